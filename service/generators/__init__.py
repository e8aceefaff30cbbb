"""Generator backends: extractive (offline default), openai-compatible, llama.cpp, Bedrock."""
