"""What a node's report becomes as series: one declaration per family, per metric profile.

Each profile (native, cadvisor, ...) is a table of families. A family names its
type, unit, help, the subject whose rows it is measured on (whose labels it
carries, as a name -> value mapping) and the extractor of its value. The text
exposition, remote write, the README's tables and the golden files are all
produced from these tables, so a figure is declared in one place.
"""
