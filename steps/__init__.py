"""ZenML steps: one per file under steps/<stage>/, thin typed wrappers over churn.*.

Steps hold no logic of their own beyond adapting types: the functions they call are
unit-tested in tests/, and the same functions run without ZenML (churn CLI).
"""
