"""End-of-run reports and live-accuracy evaluation (plain Python, no ROS)."""
