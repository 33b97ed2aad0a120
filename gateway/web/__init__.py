"""The portal's pages: templates, static files and translations (English and zh-CN)."""
