"""Input and output: Kaldi text files, audio, embeddings, configs."""
