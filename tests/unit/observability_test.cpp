// CRC-32C, the TensorBoard record framing, the phase accumulators and the Chrome trace document
// (docs/observability.md). The e2e test reads whole event files back with TensorBoard's own reader.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "core/crc32c.h"
#include "core/trace.h"
#include "train/tensorboard.h"

namespace foldmoe {
namespace {

TEST(Crc32c, StandardCheckValues) {
  // The catalogued check value of CRC-32C ("123456789") and RFC 3720's iSCSI test vectors.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xff');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  std::string inc(32, '\0');
  for (int i = 0; i < 32; ++i) inc[size_t(i)] = char(i);
  EXPECT_EQ(crc32c(inc.data(), inc.size()), 0x46DD794Eu);
  // Continuation equals the checksum of the concatenation.
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);
}

TEST(Crc32c, MaskedFormRotatesAndOffsets) {
  const uint32_t c = crc32c("abc", 3);
  EXPECT_EQ(masked_crc32c("abc", 3), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TensorBoard, FrameHoldsLengthPayloadAndChecksums) {
  const std::string payload = "hello event";
  const std::string f = tfrecord_frame(payload);
  ASSERT_EQ(f.size(), 8 + 4 + payload.size() + 4);
  uint64_t n = 0;
  std::memcpy(&n, f.data(), 8);
  EXPECT_EQ(n, payload.size());
  uint32_t len_crc = 0, data_crc = 0;
  std::memcpy(&len_crc, f.data() + 8, 4);
  std::memcpy(&data_crc, f.data() + 12 + payload.size(), 4);
  EXPECT_EQ(len_crc, masked_crc32c(f.data(), 8));
  EXPECT_EQ(data_crc, masked_crc32c(payload.data(), payload.size()));
  EXPECT_EQ(f.substr(12, payload.size()), payload);
}

TEST(TensorBoard, ScalarEventIsTheProtobufOfItsFields) {
  // wall_time 1.5 (field 1, fixed64), step 300 (field 2, varint 0xAC 0x02), a summary (field 5) with
  // one value {tag "a" (field 1), simple_value 2.0f (field 2, fixed32)}.
  const std::string e = encode_scalar_event(1.5, 300, {{"a", 2.0}});
  std::string want = "\x09";
  double wt = 1.5;
  want.append(reinterpret_cast<const char*>(&wt), 8);
  want += "\x10\xAC\x02";
  float v = 2.0f;
  std::string value = std::string("\x0A\x01" "a" "\x15", 4);
  value.append(reinterpret_cast<const char*>(&v), 4);
  std::string summary;
  summary.push_back('\x0A');
  summary.push_back(char(value.size()));
  summary.append(value);
  want.push_back('\x2A');
  want.push_back(char(summary.size()));
  want.append(summary);
  EXPECT_EQ(e, want);
}

TEST(TensorBoard, FlattenNamesNestedValuesWithSlashes) {
  const auto rec = nlohmann::ordered_json::parse(
      R"({"step": 3, "lm_loss": 2.5, "ok": true, "name": "x", "comm_bytes": {"all_to_all": 10},
          "tokens_per_expert": [[1, 2], [3, 4]]})");
  const auto s = flatten_scalars(rec);
  const std::vector<std::pair<std::string, double>> want = {
      {"lm_loss", 2.5}, {"ok", 1.0}, {"comm_bytes/all_to_all", 10.0}, {"tokens_per_expert/0/0", 1.0},
      {"tokens_per_expert/0/1", 2.0}, {"tokens_per_expert/1/0", 3.0}, {"tokens_per_expert/1/1", 4.0}};
  EXPECT_EQ(s, want);
}

TEST(TensorBoard, RowTypePrefixesTags) {
  const auto rec = nlohmann::ordered_json::parse(R"({"step": 2, "type": "eval", "accuracy": 0.5})");
  const std::vector<std::pair<std::string, double>> want = {{"eval/accuracy", 0.5}};
  EXPECT_EQ(flatten_scalars(rec), want);
}

TEST(Trace, PhaseSecondsAccumulatePerThreadAndReset) {
  (void)trace::take_phase_seconds();
  {
    const trace::PhaseScope a(trace::Phase::Forward);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::thread other([] {
    const trace::PhaseScope b(trace::Phase::Forward);  // another thread's accumulator
  });
  other.join();
  const auto s = trace::take_phase_seconds();
  EXPECT_GE(s[size_t(trace::Phase::Forward)], 0.002);
  EXPECT_EQ(s[size_t(trace::Phase::Backward)], 0.0);
  EXPECT_EQ(trace::take_phase_seconds()[size_t(trace::Phase::Forward)], 0.0);
}

TEST(Trace, RecordsOnlyWhileRecording) {
  { const trace::PhaseScope a(trace::Phase::Data); }
  trace::begin_recording();
  EXPECT_TRUE(trace::recording());
  { const trace::PhaseScope a(trace::Phase::Optimizer); }
  { const trace::PhaseScope b(trace::Phase::Forward, "forward mb0 chunk0"); }
  const std::vector<trace::Event> ev = trace::end_recording();
  EXPECT_FALSE(trace::recording());
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].name, "optimizer");
  EXPECT_EQ(ev[0].category, "optimizer");
  EXPECT_EQ(ev[1].name, "forward mb0 chunk0");
  EXPECT_EQ(ev[1].category, "compute");
  EXPECT_LE(ev[0].start_us, ev[1].start_us);
  EXPECT_EQ(trace::deserialize(trace::serialize(ev)).size(), 2u);
  EXPECT_EQ(trace::deserialize(trace::serialize(ev))[1].name, ev[1].name);
}

TEST(Trace, ChromeTraceHasOneProcessPerRankAndRelativeTimes) {
  const std::vector<std::vector<trace::Event>> ranks = {{{"forward", "compute", 1000, 50}},
                                                        {{"all_reduce dp (8 B)", "comm", 1010, 5}}};
  const auto doc = nlohmann::json::parse(trace::chrome_trace_json(ranks, 7));
  EXPECT_EQ(doc["otherData"]["step"], 7);
  int x = 0;
  for (const auto& e : doc["traceEvents"]) {
    if (e["ph"] != "X") continue;
    ++x;
    const int64_t want_ts = e["pid"] == 0 ? 0 : 10;
    EXPECT_EQ(e["ts"].get<int64_t>(), want_ts);
  }
  EXPECT_EQ(x, 2);
}

}  // namespace
}  // namespace foldmoe
