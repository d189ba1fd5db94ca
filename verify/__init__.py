"""Does it perform as planned: the micro-benchmark (bench), the reasoning-effort sweep (effort_sweep), and both run
on a recorded deployment or any OpenAI-compatible URL (measure). Uses runtime/ for the records it measures."""
