"""The Verilog back end: emission (`emit`: magma -> Verilog and CoreIR, with the ternary mux
lowering of `mux_lowering`, and lint), netlist checks (`structure`: rule R3), Yosys' word-level
statistics (`stat`), and synthesis and place-and-route for an FPGA (`ecp5`).  Proofs live in
`magma_llama.formal`; see docs/synthesis.md."""
