"""lecturenn: the classic neural-network lecture, in PyTorch."""
