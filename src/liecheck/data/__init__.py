"""Data: offline sample photographs, image folders, the paper's image selection."""

from .images import SAMPLE_PHOTOS, ImageSet, load_folder, preprocess, sample_photos, select

__all__ = ["SAMPLE_PHOTOS", "ImageSet", "load_folder", "preprocess", "sample_photos", "select"]
