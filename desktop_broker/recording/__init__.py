"""Screen recordings in one format for every seat: guacd's Guacamole-protocol recording, sealed at rest.

`guacd_recorder` keeps a read-only guacd connection to an X11 seat's x11vnc open so guacd writes the recording;
`sealing` encrypts a finished recording (AES-256-GCM, chunked) and opens it again for playback.
"""
