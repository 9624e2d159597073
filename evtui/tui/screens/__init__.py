"""The main screen, the explain view and the small dialogs."""
