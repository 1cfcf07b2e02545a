"""Reading run directories statistically: the tests, run-to-run comparison and the regression gate."""
