"""The cachemw demo shop (grows with the features)."""
