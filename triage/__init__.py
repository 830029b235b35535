"""Classification, roster, routing and assignment."""
