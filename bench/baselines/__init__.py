"""Earlier understanders, kept only to be measured against."""
