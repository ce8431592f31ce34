"""Reports: text for the terminal and failures, JSON, JUnit, Markdown."""
