"""The commands: check-data, pack/index, stats, bench, parity and demo, harnesses built on
every room below (the data listing, the graphs, the stats pass, the loader and the reference
path). ``cli.py`` parses arguments and hands over to them."""
