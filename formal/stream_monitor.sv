// Ready/valid property monitor: the stream rule of docs/streams.md as SVA-style
// immediate assertions that Yosys `read -formal` understands.
//
// Attach one per stream port (magma_llama.formal.props.Props.monitor does it in
// one line).  IS_INPUT=1: the port is driven by the environment, so the rule is
// *assumed*; IS_INPUT=0: the port is driven by the design, so it is *asserted*.
//   R1  valid is low in the first cycle after reset
//   R2  valid & !ready  ->  next cycle valid is still high and data is unchanged
// R3 (valid never depends on ready combinationally) is structural; see docs.
module stream_monitor #(
  parameter W = 1,
  parameter IS_INPUT = 1
) (
  input         clk,
  input         rst,
  input         valid,
  input         ready,
  input [W-1:0] data
);
`ifdef FORMAL
  reg f_past_valid = 1'b0;
  always @(posedge clk) f_past_valid <= 1'b1;

  generate if (IS_INPUT) begin : g_assume
    always @(posedge clk)
      if (f_past_valid) begin
        if ($past(rst))
          assume(!valid);
        else if ($past(valid && !ready))
          assume(valid && data == $past(data));
      end
  end else begin : g_assert
    always @(posedge clk)
      if (f_past_valid) begin
        if ($past(rst))
          assert(!valid);
        else if ($past(valid && !ready))
          assert(valid && data == $past(data));
      end
  end endgenerate
`endif
endmodule
