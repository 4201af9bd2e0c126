"""A template moco plugin: copy it, rename it and replace the example method with yours.

Keep this module empty of imports: moco imports ``moco_plugin_template.plugin`` on every
command, and anything imported here would slow down ``moco list-methods`` for everybody.
"""
