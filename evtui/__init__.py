"""evtui: caption event-camera recordings with vision-language models."""
