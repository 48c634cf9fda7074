"""What a person sees while a command runs: fakeface's own lines and progress; the rest goes to a log."""
