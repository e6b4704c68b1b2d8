// Crash-test writer (being written).
print("logit-torture")
