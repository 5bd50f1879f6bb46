"""The read side: a study's history from the store and git, and the HTML report. Never imported by the loop."""
