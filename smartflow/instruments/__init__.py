"""Angel's scrip master → the chain universe of each underlying."""
