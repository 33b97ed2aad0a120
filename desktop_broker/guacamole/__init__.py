"""The Guacamole display backend: launch tokens for guacamole-lite and the gate that redeems them.

guacamole-lite (deploy/guacamole-lite/server.js) carries pixels between the browser and guacd;
this package decides who may open which connection. See docs/guacamole.md.
"""
