"""Tell photoshopped face images from real ones, at scale, on Ray."""
