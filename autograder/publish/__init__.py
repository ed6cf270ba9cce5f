"""What leaves the store: feedback pages, the cohort report, gradebook exports, Ladok, the lab module's grades."""
