"""SystemVerilog around the decoder for simulation: the weight memory and the testbench top.

`WeightMemory` stands for the DRAM the weights live in (decoder/weight_port.py's word
layout, loaded with $readmemh).  It accepts burst requests {addr, len} into a small
queue and serves their words, in order, on WDATA, following the stream rule (valid is
a flop, held with stable data until the transfer).  Two knobs make it slower than the
decoder: LATENCY, the cycles from a request's transfer to its first word (at least 2:
one to queue it, one to register the word; requests in the queue wait in parallel, as
in a pipelined DRAM controller), and BYTES_PER_CYCLE, a bandwidth limit (a word needs
ceil(WORD_BITS / 8) bytes of credit; credit grows by BYTES_PER_CYCLE a cycle and is
capped at one word, so idle cycles do not buy a burst; 0 = no limit, a word a cycle).
Both are parameters that the plusargs `+latency=N` and `+bytes_per_cycle=B` override at
run time, so one Verilator build serves every setting; `+weights=FILE` names the image.

`TbTop` joins the decoder (any module with the decoder's ports, by name) to the
memory, leaves TOK_IN/TOK_OUT, inv_t and seed to the C++ harness, counts cycles and
weight-port traffic, and keeps sticky error bits: a bad request (zero length or past
the image), and the stream rule broken on TOK_OUT or WREQ (valid dropped or data
changed while stalled, or valid in the first cycle after reset).  It also counts the
cycles spent in each value of the decoder's `op` register (the program step, decoder/top.py),
read by hierarchical reference `dut.op`; a design without one (op_bits=None, e.g. the
harness tests' echo) has all its cycles counted in slot 0.
"""

from __future__ import annotations

import re

# bits of TbTop's `errors` output; harness.cpp names them in the same order
ERROR_NAMES = ("bad weight request (zero length or past the image)",
               "TOK_OUT broke the stream rule", "WREQ broke the stream rule")
QUEUE_DEPTH = 4
OP_SLOTS = 16              # per-op cycle counters: enough for a 4-bit op register

WEIGHT_MEMORY = r"""
module WeightMemory #(
  parameter int WORD_BITS = 32,
  parameter int DEPTH = 1,
  parameter int LATENCY = 2,
  parameter int BYTES_PER_CYCLE = 0,
  parameter int QUEUE = 4
) (
  input  logic                 CLK,
  input  logic                 RESET,
  input  logic                 WREQ_valid,
  output logic                 WREQ_ready,
  input  logic [31:0]          WREQ_data_addr,
  input  logic [15:0]          WREQ_data_len,
  output logic                 WDATA_valid,
  input  logic                 WDATA_ready,
  output logic [WORD_BITS-1:0] WDATA_data,
  output logic                 bad_request
);
  localparam int WORD_BYTES = (WORD_BITS + 7) / 8;
  localparam int QB = $clog2(QUEUE);

  logic [WORD_BITS-1:0] mem [0:DEPTH-1];
  int unsigned latency, bytes_per_cycle;
  string image;
  initial begin
    latency = LATENCY;
    bytes_per_cycle = BYTES_PER_CYCLE;
    void'($value$plusargs("latency=%d", latency));
    void'($value$plusargs("bytes_per_cycle=%d", bytes_per_cycle));
    if ($value$plusargs("weights=%s", image)) $readmemh(image, mem);
    else for (int i = 0; i < DEPTH; i++) mem[i] = '0;
  end

  // the request queue; entry i may deliver its first word in cycle q_due[i]
  logic [31:0] q_addr [QUEUE];
  logic [15:0] q_len  [QUEUE];
  logic [63:0] q_due  [QUEUE];
  logic [QB:0]   count;
  logic [QB-1:0] head, tail;
  logic [15:0]   off;          // words of the head request already served
  logic [63:0]   now;          // cycles since reset
  logic [31:0]   credit;

  assign WREQ_ready = count != (QB+1)'(QUEUE);
  wire push = WREQ_valid && WREQ_ready;
  wire bad = WREQ_data_len == 16'd0 || {32'd0, WREQ_data_addr} + {48'd0, WREQ_data_len} > DEPTH;
  wire [31:0] avail = credit + bytes_per_cycle;
  wire credit_ok = bytes_per_cycle == 0 || avail >= WORD_BYTES;
  // a word loaded now is valid next cycle: due when now + 1 >= q_due
  wire load = (!WDATA_valid || WDATA_ready) && count != 0 && now + 64'd1 >= q_due[head] && credit_ok;
  wire pop = load && off == q_len[head] - 16'd1;
  wire [31:0] spent = load ? WORD_BYTES : 0;
  wire [31:0] left = avail - spent;

  always_ff @(posedge CLK) begin
    if (RESET) begin
      count <= 0; head <= 0; tail <= 0; off <= 0; now <= 0; credit <= 0;
      WDATA_valid <= 1'b0; bad_request <= 1'b0;
    end else begin
      now <= now + 64'd1;
      if (push && bad) bad_request <= 1'b1;
      if (push && !bad) begin
        q_addr[tail] <= WREQ_data_addr;
        q_len[tail] <= WREQ_data_len;
        q_due[tail] <= now + 64'(latency);
        tail <= tail + 1'b1;
      end
      count <= count + (QB+1)'(push && !bad) - (QB+1)'(pop);
      if (load) begin
        WDATA_data <= mem[q_addr[head] + 32'(off)];
        WDATA_valid <= 1'b1;
        off <= pop ? 16'd0 : off + 16'd1;
        if (pop) head <= head + 1'b1;
      end else if (WDATA_ready) begin
        WDATA_valid <= 1'b0;
      end
      credit <= bytes_per_cycle == 0 ? 0 : (left > WORD_BYTES ? WORD_BYTES : left);
    end
  end
endmodule
"""

STREAM_CHECK = r"""
// The stream rule on an output of the decoder: after a stalled beat (valid & !ready)
// the same beat must be offered again; no valid in the first cycle after reset.
module StreamRuleCheck #(parameter int W = 1) (
  input logic CLK, input logic RESET, input logic valid, input logic ready, input logic [W-1:0] data,
  output logic broken
);
  logic stalled, first;
  logic [W-1:0] held;
  always_ff @(posedge CLK) begin
    if (RESET) begin
      stalled <= 1'b0; first <= 1'b1; broken <= 1'b0;
    end else begin
      if ((first && valid) || (stalled && (!valid || data != held))) broken <= 1'b1;
      first <= 1'b0;
      stalled <= valid && !ready;
      held <= data;
    end
  end
endmodule
"""

TB_TOP = r"""
module TbTop (
  input  logic        CLK,
  input  logic        RESET,
  input  logic        TOK_IN_valid,
  input  logic [15:0] TOK_IN_data_token,
  input  logic        TOK_IN_data_last,
  output logic        TOK_IN_ready,
  output logic        TOK_OUT_valid,
  output logic [15:0] TOK_OUT_data,
  input  logic        TOK_OUT_ready,
  input  logic [30:0] inv_t,
  input  logic [31:0] seed,
  output logic [63:0] cycles,          // cycles since reset
  output logic [63:0] wdata_words,     // WDATA transfers (valid & ready)
  output logic [63:0] wdata_offered,   // cycles with WDATA valid
  output logic [63:0] wreq_count,      // WREQ transfers
  output logic [2:0]  errors,          // sticky: memory_model.ERROR_NAMES
  output logic [64*{op_slots}-1:0] op_cycles   // cycles spent in each value of dut.op, 64 bits each
);
  logic WREQ_valid, WREQ_ready, WDATA_valid, WDATA_ready;
  logic [31:0] WREQ_data_addr;
  logic [15:0] WREQ_data_len;
  logic [{word_bits}-1:0] WDATA_data;

  {decoder} dut (
    .CLK(CLK), .RESET(RESET),
    .TOK_IN_valid(TOK_IN_valid), .TOK_IN_data_token(TOK_IN_data_token),
    .TOK_IN_data_last(TOK_IN_data_last), .TOK_IN_ready(TOK_IN_ready),
    .TOK_OUT_valid(TOK_OUT_valid), .TOK_OUT_data(TOK_OUT_data), .TOK_OUT_ready(TOK_OUT_ready),
    .WREQ_valid(WREQ_valid), .WREQ_data_addr(WREQ_data_addr), .WREQ_data_len(WREQ_data_len),
    .WREQ_ready(WREQ_ready),
    .WDATA_valid(WDATA_valid), .WDATA_data(WDATA_data), .WDATA_ready(WDATA_ready),
    .inv_t(inv_t), .seed(seed));

  WeightMemory #(.WORD_BITS({word_bits}), .DEPTH({depth}), .LATENCY({latency}),
                 .BYTES_PER_CYCLE({bytes_per_cycle}), .QUEUE({queue})) weights (
    .CLK(CLK), .RESET(RESET),
    .WREQ_valid(WREQ_valid), .WREQ_ready(WREQ_ready), .WREQ_data_addr(WREQ_data_addr),
    .WREQ_data_len(WREQ_data_len),
    .WDATA_valid(WDATA_valid), .WDATA_ready(WDATA_ready), .WDATA_data(WDATA_data),
    .bad_request(errors[0]));

  StreamRuleCheck #(.W(16)) tok_out_check (.CLK(CLK), .RESET(RESET), .valid(TOK_OUT_valid),
    .ready(TOK_OUT_ready), .data(TOK_OUT_data), .broken(errors[1]));
  StreamRuleCheck #(.W(48)) wreq_check (.CLK(CLK), .RESET(RESET), .valid(WREQ_valid),
    .ready(WREQ_ready), .data({{WREQ_data_addr, WREQ_data_len}}), .broken(errors[2]));

  // the decoder's program step ({op_source}), one counter per value
  wire [$clog2({op_slots})-1:0] op_now = {op_expr};
  logic [63:0] op_count [{op_slots}];
  for (genvar i = 0; i < {op_slots}; i++) begin : op_out
    assign op_cycles[64*i +: 64] = op_count[i];
  end

  always_ff @(posedge CLK) begin
    if (RESET) begin
      cycles <= 0; wdata_words <= 0; wdata_offered <= 0; wreq_count <= 0;
      for (int i = 0; i < {op_slots}; i++) op_count[i] <= 0;
    end else begin
      op_count[op_now] <= op_count[op_now] + 64'd1;
      cycles <= cycles + 64'd1;
      wdata_words <= wdata_words + 64'(WDATA_valid && WDATA_ready);
      wdata_offered <= wdata_offered + 64'(WDATA_valid);
      wreq_count <= wreq_count + 64'(WREQ_valid && WREQ_ready);
    end
  end
endmodule
"""


def op_register_bits(verilog: str, module: str) -> int | None:
    """The width of the `op` register declared in `module` of this Verilog, or None if it has none
    (or one too wide for OP_SLOTS counters)."""
    start = re.search(rf"^module {re.escape(module)}\b", verilog, re.M)
    if not start:
        return None
    end = verilog.find("endmodule", start.end())
    body = verilog[start.end():end if end >= 0 else len(verilog)]
    decl = re.search(r"^\s*(?:reg|wire|logic)\s*(?:\[(\d+):0\])?\s*op\s*;", body, re.M)
    if not decl:
        return None
    bits = int(decl.group(1)) + 1 if decl.group(1) else 1
    return bits if 1 << bits <= OP_SLOTS else None


def testbench_sv(decoder: str, word_bits: int, depth: int, latency: int = 2, bytes_per_cycle: int = 0,
                 op_bits: int | None = None) -> str:
    """WeightMemory + StreamRuleCheck + a TbTop that instantiates module `decoder`.

    latency and bytes_per_cycle are only defaults: the plusargs override them.  op_bits: the
    width of the decoder's `op` register (op_register_bits), None to count every cycle in slot 0."""
    slot_bits = (OP_SLOTS - 1).bit_length()
    if op_bits:
        op_expr = f"{slot_bits}'(dut.op)" if op_bits < slot_bits else "dut.op"
        op_source = f"dut.op, {op_bits} bits"
    else:
        op_expr, op_source = f"{slot_bits}'d0", "the design has no op register: slot 0"
    top = TB_TOP.format(decoder=decoder, word_bits=word_bits, depth=depth, latency=latency,
                        bytes_per_cycle=bytes_per_cycle, queue=QUEUE_DEPTH, op_slots=OP_SLOTS,
                        op_expr=op_expr, op_source=op_source)
    return f"// generated by magma_llama/decoder/memory_model.py\n{WEIGHT_MEMORY}{STREAM_CHECK}{top}"


def write_testbench(path, decoder: str, word_bits: int, depth: int, op_bits: int | None = None) -> str:
    with open(path, "w") as f:
        f.write(testbench_sv(decoder, word_bits, depth, op_bits=op_bits))
    return str(path)


__all__ = ["ERROR_NAMES", "OP_SLOTS", "QUEUE_DEPTH", "op_register_bits", "testbench_sv", "write_testbench"]
