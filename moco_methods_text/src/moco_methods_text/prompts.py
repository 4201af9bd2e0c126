"""Named prompt templates of the text-level methods.

Each is the default of a template parameter (``moco_core.templates``): a lab's override may
reword, reorder or drop its placeholders but not invent new ones. ``{question}`` is always the
dataset's task prompt (question, options and answer-format instruction), so a revised answer
keeps the format the scorer reads.
"""

from __future__ import annotations

from moco_core.templates import template_type


def listing(label: str, texts: list[str], numbers: list[int] | None = None) -> str:
    """Answers shown to a model as ``<label> k: <text>`` blocks (k 1-based unless given)."""
    numbers = numbers or list(range(1, len(texts) + 1))
    return "\n\n".join(f"{label} {k}:\n{text.strip()}" for k, text in zip(numbers, texts, strict=True))


QuestionAnswers = template_type("question", "answers")

SUMMARIZE = (
    "Question:\n{question}\n\n"
    "Several assistants answered this question. Their final answers:\n\n{answers}\n\n"
    "Summarise these answers into one final answer to the question, in the format the question asks for."
)

DEBATE_REVISE = (
    "Question:\n{question}\n\n"
    "Your previous answer:\n{own_answer}\n\n"
    "Answers from other agents:\n\n{other_answers}\n\n"
    "Using the other agents' answers as additional advice, give an updated answer to the question, "
    "in the format the question asks for."
)

FEEDBACK_CRITIQUE = (
    "Question:\n{question}\n\n"
    "Another assistant answered:\n{answer}\n\n"
    "Give brief, specific feedback on this answer: point out any mistakes and how to fix them."
)

FEEDBACK_REVISE = (
    "Question:\n{question}\n\n"
    "Your previous answer:\n{own_answer}\n\n"
    "Feedback from other assistants:\n\n{critiques}\n\n"
    "Taking the feedback into account, give an improved answer to the question, in the format the question asks for."
)

KNOWLEDGE = (
    "Question:\n{question}\n\n"
    "Do not answer the question. Write one short paragraph of background knowledge that would help answer it."
)

KNOWLEDGE_ANSWER = "Knowledge:\n\n{knowledge}\n\nUsing the knowledge above where it helps, answer:\n{question}"

STRUCTURED_REVISE = (
    "Question:\n{question}\n\n"
    "Your previous answer:\n{own_answer}\n\n"
    "Answers from your neighbours:\n\n{neighbour_answers}\n\n"
    "Considering their answers, give an updated answer to the question, in the format the question asks for."
)

MOA_PROPOSE = (
    "You are given answers from several models to the question below. Critically evaluate them (some may be "
    "wrong) and write your own improved answer.\n\nAnswers:\n\n{answers}\n\nQuestion:\n{question}"
)

MOA_AGGREGATE = (
    "You are given answers from several models to the question below. Synthesise them into a single, accurate "
    "answer; do not simply copy one of them.\n\nAnswers:\n\n{answers}\n\nQuestion:\n{question}"
)

BLENDER_RANK = (
    "Question:\n{question}\n\n"
    "Candidate A:\n{candidate_a}\n\n"
    "Candidate B:\n{candidate_b}\n\n"
    "Which candidate answers the question better? Reply with one letter only: A or B."
)

BLENDER_FUSE = (
    "Question:\n{question}\n\n"
    "Candidate answers, best first:\n\n{candidates}\n\n"
    "Fuse the candidates into one answer that keeps their strengths and fixes their mistakes, "
    "in the format the question asks for."
)

BLACKBOARD_CHOOSE = (
    "You are agent {agent} working with other agents on a shared blackboard.\n\n"
    "Question:\n{question}\n\n"
    "Blackboard so far:\n{blackboard}\n\n"
    "Choose your next action, one of: propose (suggest a strategy), execute (carry out a solution step), "
    "critique (critique and refine an entry), terminate (give the final answer). Reply with the action name only."
)

BLACKBOARD_ACT = (
    "You are agent {agent} working with other agents on a shared blackboard.\n\n"
    "Question:\n{question}\n\n"
    "Blackboard so far:\n{blackboard}\n\n"
    "Your action: {action}. {instruction}"
)

BLACKBOARD_VOTE = (
    "Question:\n{question}\n\n"
    "The agents reached these conclusions:\n\n{conclusions}\n\n"
    "Which conclusion is correct? Reply with its number only."
)

SWARM_NODE = (
    "Question:\n{question}\n\n"
    "Responses from earlier nodes:\n\n{previous}\n\n"
    "Using them where they help, answer the question, in the format the question asks for."
)

AGGREGATE = (
    "Given the following problem:\n{question}\n\n"
    "and these solution attempts:\n\n{answers}\n\n"
    "It is possible that any, all, or none of these solutions are correct. Review them, then write a correct "
    "solution in the format the problem asks for."
)

SPARTA_JUDGE = (
    "Please judge the following response based on the question and the response to be evaluated.\n"
    "Question: {question}\n"
    "Response to be evaluated: {response}\n\n"
    "Output ONLY a JSON object with one score from 1 to 10, like this:\n"
    '{{"score": 7}}'
)
