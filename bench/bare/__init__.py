"""The bare Django app every HTTP figure is divided by: one JsonResponse view, no middleware."""
