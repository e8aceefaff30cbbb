"""Evaluation harness: retrieval (BEIR) and question answering (SQuAD) quality, measured end to end."""
