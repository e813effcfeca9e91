"""Tools run by hand or by make (bench, load, corpus) and the local stack helpers they and the tests share."""
