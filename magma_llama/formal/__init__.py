"""Formal verification of stream blocks: property builder (`props`), the table of
provable designs (`designs`), and the SymbiYosys runner (`sby`).  See docs/formal.md."""
