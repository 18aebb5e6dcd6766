"""Agent chat: the assistant's replies in agent conversations (issue 5's
``agent.reply`` job kind), the model providers that write them, and the
API Service's ``POST /api/v1/chat`` and ``POST /api/v1/chat/stream``."""
