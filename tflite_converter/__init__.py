"""tflite_converter package."""
