"""The Textual app: `evtui.tui.app.run_app(job)` and `run_app_error(message)`.

Nothing here is imported by the engine or the headless path; importing this package
alone does not load Textual (the app module does).
"""
