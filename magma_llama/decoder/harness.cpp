// The Verilator main of the whole-decoder simulation (TbTop of decoder/memory_model.py).
//
// Python (decoder/sim.py) drives it through stdin/stdout, one command a line, so text
// can be printed while tokens leave the hardware.  Nothing is printed per cycle.
//
//   reset <inv_t> <seed>   RESET for 2 cycles with these plain inputs; empties the TOK_IN
//                          queue and the counters                       -> "ok"
//   tok <id> <last>        queue a TOK_IN beat (sent in order, held until taken)
//   ready <percent> <seed> TOK_OUT ready in <percent>% of cycles (xorshift32); 100 = always
//   run <n> <max_cycles>   clock until n TOK_OUT beats, each printed as
//                          "out <token> <cycle> <wdata_words>", then "done <cycle> <wdata_words>";
//                          "timeout <cycle>" if max_cycles pass first
//   stats                  -> "stats <cycles> <wdata_words> <wdata_offered> <wreq_count>"
//   ops                    -> "ops <c0> <c1> ... <c15>": cycles since reset spent in each value
//                          of the decoder's op register (all in c0 for a design without one)
//   quit
// A broken rule ends the run with "error <what>" and exit status 3; a bad command gives
// "error ..." and exit 2.  Command line: plusargs for WeightMemory (+weights=FILE,
// +latency=N, +bytes_per_cycle=B) and `--trace FILE` (needs a --trace-fst or --trace build:
// the file is FST or VCD as the build chose).

#include "VTbTop.h"
#include "verilated.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
typedef VerilatedFstC TraceFile;
#elif VM_TRACE_VCD
#include "verilated_vcd_c.h"
typedef VerilatedVcdC TraceFile;
#endif

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

static const char* const ERROR_NAMES[] = {
    "bad weight request (zero length or past the image)",
    "TOK_OUT broke the stream rule",
    "WREQ broke the stream rule",
};

struct TokBeat {
    uint32_t token;
    bool last;
};

class Harness {
  public:
    Harness(VerilatedContext* ctx, const char* trace) : ctx_(ctx), top_(new VTbTop{ctx}) {
#if VM_TRACE
        if (trace) {
            tfp_.reset(new TraceFile);
            top_->trace(tfp_.get(), 99);
            tfp_->open(trace);
        }
#else
        if (trace) {
            std::printf("error this build has no tracing (build with trace on)\n");
            std::exit(2);
        }
#endif
        top_->CLK = 0;
        top_->RESET = 1;
        top_->eval();
    }

    ~Harness() {
#if VM_TRACE
        if (tfp_) tfp_->close();
#endif
        top_->final();
    }

    void reset(uint32_t inv_t, uint32_t seed) {
        queue_.clear();
        top_->inv_t = inv_t & 0x7fffffffu;
        top_->seed = seed;
        top_->RESET = 1;
        idle_inputs();
        // whole clock cycles, falling edges included: the clock gates (stages/clock_gate.py)
        // sample their enables there, and the units behind them must see RESET too
        for (int i = 0; i < 3; ++i) {
            top_->eval();
            tick();
        }
        top_->RESET = 0;
    }

    void ready(unsigned percent, uint32_t seed) {
        ready_percent_ = percent;
        rng_ = seed ? seed : 0x9E3779B9u;
    }

    void push(uint32_t token, bool last) { queue_.push_back({token, last}); }

    // clock until n TOK_OUT beats or max_cycles; prints each beat
    void run(uint64_t n, uint64_t max_cycles) {
        uint64_t got = 0;
        for (uint64_t c = 0; got < n; ++c) {
            if (c >= max_cycles) {
                std::printf("timeout %llu\n", (unsigned long long)top_->cycles);
                std::fflush(stdout);
                return;
            }
            // inputs for this cycle
            top_->TOK_IN_valid = !queue_.empty();
            if (!queue_.empty()) {
                top_->TOK_IN_data_token = queue_.front().token;
                top_->TOK_IN_data_last = queue_.front().last;
            }
            top_->TOK_OUT_ready = ready_now();
            top_->eval();
            // transfers at the coming edge
            const bool in_fire = top_->TOK_IN_valid && top_->TOK_IN_ready;
            const bool out_fire = top_->TOK_OUT_valid && top_->TOK_OUT_ready;
            const uint64_t cycle = top_->cycles;
            const uint32_t token = top_->TOK_OUT_data;
            tick();
            if (in_fire) queue_.pop_front();
            if (out_fire) {
                ++got;
                // the WDATA count after the edge includes this cycle's transfer
                std::printf("out %u %llu %llu\n", token, (unsigned long long)cycle,
                            (unsigned long long)top_->wdata_words);
                std::fflush(stdout);
            }
            check();
        }
        std::printf("done %llu %llu\n", (unsigned long long)top_->cycles,
                    (unsigned long long)top_->wdata_words);
        std::fflush(stdout);
    }

    void stats() {
        std::printf("stats %llu %llu %llu %llu\n", (unsigned long long)top_->cycles,
                    (unsigned long long)top_->wdata_words, (unsigned long long)top_->wdata_offered,
                    (unsigned long long)top_->wreq_count);
        std::fflush(stdout);
    }

    void ops() {
        // op_cycles is 16 packed 64-bit counters, as 32-bit words, counter 0 in the low bits
        const unsigned slots = sizeof(top_->op_cycles) / sizeof(top_->op_cycles[0]) / 2;
        std::string line = "ops";
        for (unsigned i = 0; i < slots; ++i) {
            const uint64_t c = (uint64_t)top_->op_cycles[2 * i] | ((uint64_t)top_->op_cycles[2 * i + 1] << 32);
            line += " " + std::to_string((unsigned long long)c);
        }
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
    }

    [[noreturn]] void fail(int status, const std::string& what) {
        std::printf("error %s\n", what.c_str());
        std::fflush(stdout);
        this->~Harness();
        std::exit(status);
    }

  private:
    void idle_inputs() {
        top_->TOK_IN_valid = 0;
        top_->TOK_OUT_ready = 0;
    }

    bool ready_now() {
        if (ready_percent_ >= 100) return true;
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 17;
        rng_ ^= rng_ << 5;
        return rng_ % 100 < ready_percent_;
    }

    // The falling edge is evaluated with the next cycle's inputs (run's first eval), not on
    // its own: one eval a cycle fewer.  The only falling-edge logic is the clock gates'
    // enable sampling (stages/clock_gate.py), which then sees that cycle's inputs, as an ICG
    // latch open in the low phase does.  A traced run evaluates it here, so the waveform
    // shows the clock low.
    void tick() {
        top_->CLK = 1;
        top_->eval();
        ctx_->timeInc(1);
        dump();
        top_->CLK = 0;
#if VM_TRACE
        if (tfp_) top_->eval();
#endif
        ctx_->timeInc(1);
        dump();
    }

    void dump() {
#if VM_TRACE
        if (tfp_) tfp_->dump(ctx_->time());
#endif
    }

    void check() {
        if (ctx_->gotFinish()) fail(3, "the simulation called $finish");
        const unsigned errors = top_->errors;
        if (!errors) return;
        std::string what;
        for (unsigned i = 0; i < sizeof(ERROR_NAMES) / sizeof(*ERROR_NAMES); ++i)
            if (errors & (1u << i)) what += (what.empty() ? "" : "; ") + std::string(ERROR_NAMES[i]);
        fail(3, what + " at cycle " + std::to_string((unsigned long long)top_->cycles));
    }

    VerilatedContext* ctx_;
    std::unique_ptr<VTbTop> top_;
#if VM_TRACE
    std::unique_ptr<TraceFile> tfp_;
#endif
    std::deque<TokBeat> queue_;
    unsigned ready_percent_ = 100;
    uint32_t rng_ = 0x9E3779B9u;
};

int main(int argc, char** argv) {
    const char* trace = nullptr;
    for (int i = 1; i < argc; ++i)
        if (!std::strcmp(argv[i], "--trace") && i + 1 < argc) trace = argv[i + 1];
    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
#if VM_TRACE
    if (trace) ctx->traceEverOn(true);
#endif
    Harness h(ctx.get(), trace);
    std::printf("hello\n");
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string cmd;
        if (!(in >> cmd)) continue;
        if (cmd == "reset") {
            uint32_t inv_t, seed;
            if (!(in >> inv_t >> seed)) h.fail(2, "usage: reset <inv_t> <seed>");
            h.reset(inv_t, seed);
            std::printf("ok\n");
            std::fflush(stdout);
        } else if (cmd == "tok") {
            uint32_t token, last;
            if (!(in >> token >> last)) h.fail(2, "usage: tok <id> <last>");
            h.push(token, last != 0);
        } else if (cmd == "ready") {
            unsigned percent;
            uint32_t seed;
            if (!(in >> percent >> seed)) h.fail(2, "usage: ready <percent> <seed>");
            h.ready(percent, seed);
        } else if (cmd == "run") {
            unsigned long long n, max_cycles;
            if (!(in >> n >> max_cycles)) h.fail(2, "usage: run <n> <max_cycles>");
            h.run(n, max_cycles);
        } else if (cmd == "stats") {
            h.stats();
        } else if (cmd == "ops") {
            h.ops();
        } else if (cmd == "quit") {
            break;
        } else {
            h.fail(2, "unknown command: " + cmd);
        }
    }
    return 0;
}
