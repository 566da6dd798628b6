"""The shared calendar: exhibitions, festivals, fairs, trainings, campaigns and meetings."""
