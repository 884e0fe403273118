"""Drop-in layers for frameworks: LuminoraCore's storage and a LangChain chat history.

Import them from their modules (``luminora_redis.compat.luminoracore``,
``luminora_redis.compat.langchain``); the LangChain one needs the
``luminora-redis[langchain]`` extra.
"""
