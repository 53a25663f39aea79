// The background checkpoint writer (checkpoint.async): what it writes is the state at submit time
// (later changes to the source do not reach the files), byte for byte what a synchronous save
// writes; one write at a time, in submission order; a failed write is raised (rule C5) naming
// the checkpoint and the cause, and leaves no checkpoint under the real name.
#include "train/async_checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <thread>

#include "core/check.h"
#include "core/rng.h"
#include "tiny_train_state.h"
#include "train/checkpoint.h"

using namespace foldmoe;
using namespace foldmoe::train;
namespace fs = std::filesystem;

namespace {

// The tiny model of the checkpoint tests (tests/unit/tiny_train_state.h), 16 wide.
struct State : foldmoe::test_support::TinyTrainState {
  TrainState& st = state;

  explicit State(uint64_t seed) : TinyTrainState(seed, 16) {}
  // Changes every saved value: what a training step does to the live state.
  void train_a_step() {
    for (float* p : {dense.params(), expert.params()}) p[0] += 1.0f;
    for (auto* v : {&md, &vd, &me, &ve}) (*v)[0] += 1.0f;
    st.buffers.begin()->second[0] += 1.0f;
  }
};

// The saved elements of arena-shaped values (the padding between parameters is not saved).
std::vector<float> saved_part(const ParamArena& a, const float* values) {
  std::vector<float> out;
  for (int i = 0; i < a.size(); ++i)
    out.insert(out.end(), values + a.offset(i), values + a.offset(i) + shape_numel(a.spec(i).shape));
  return out;
}

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << p;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class AsyncCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("foldmoe_async_ckpt_test_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string dir(const std::string& name) const { return (root_ / name).string(); }
  fs::path root_;
};

// Opens once the test says so: holds the background write in the middle of its work.
struct Gate {
  std::promise<void> open;
  std::shared_future<void> opened = open.get_future().share();
  SaveOptions hold_after(const std::string& file) {
    SaveOptions o;
    o.after_file = [f = opened, file](const std::string& written) {
      if (written == file) f.wait();
    };
    return o;
  }
};

void expect_c5(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("checkpoint error C5"), std::string::npos) << what;
    for (const std::string& frag : fragments) EXPECT_NE(what.find(frag), std::string::npos) << frag << "\n" << what;
  }
}

}  // namespace

TEST_F(AsyncCheckpoint, WritesTheStateOfSubmitTimeByteForByteLikeASynchronousSave) {
  State live(3);
  save_checkpoint(dir("sync"), live.st);  // the reference: the synchronous save of the same state
  State before(3);                        // the same values, kept aside to compare the load with

  AsyncCheckpointWriter w;
  Gate gate;
  w.submit(dir("async"), CheckpointSnapshot::copy_of(live.st), gate.hold_after("model.safetensors"));
  live.train_a_step();  // while the write is held after its first file
  live.train_a_step();
  EXPECT_TRUE(w.pending());
  EXPECT_FALSE(w.poll().has_value());  // held: not done
  EXPECT_FALSE(checkpoint_is_complete(dir("async")));
  gate.open.set_value();
  EXPECT_EQ(w.wait(), dir("async"));
  EXPECT_FALSE(w.pending());

  for (const char* f : {"model.safetensors", "optimizer.safetensors", "COMPLETE"})
    EXPECT_EQ(bytes_of(fs::path(dir("async")) / f), bytes_of(fs::path(dir("sync")) / f)) << f;
  State loaded(99);
  load_checkpoint(dir("async"), loaded.st);
  EXPECT_EQ(saved_part(loaded.dense, loaded.dense.params()), saved_part(before.dense, before.dense.params()));
  EXPECT_EQ(saved_part(loaded.expert, loaded.expert.params()), saved_part(before.expert, before.expert.params()));
  EXPECT_EQ(saved_part(loaded.dense, loaded.md.data()), saved_part(before.dense, before.md.data()));
  EXPECT_EQ(saved_part(loaded.expert, loaded.ve.data()), saved_part(before.expert, before.ve.data()));
  EXPECT_EQ(loaded.st.buffers, before.st.buffers);
  EXPECT_EQ(loaded.st.step, 3);
  // The live state did move on.
  EXPECT_NE(saved_part(live.dense, live.md.data()), saved_part(before.dense, before.md.data()));
}

TEST_F(AsyncCheckpoint, OneWriteInFlightInSubmissionOrder) {
  State s(5);
  AsyncCheckpointWriter w;
  Gate gate;
  w.submit(dir("step-1"), CheckpointSnapshot::copy_of(s.st), gate.hold_after("optimizer.safetensors"));
  s.train_a_step();
  // The second submit must wait for the first: the first is still held, so open it from elsewhere.
  bool first_complete_when_second_started = false;
  SaveOptions watch;
  watch.after_file = [&](const std::string& file) {
    if (file == "model.safetensors") first_complete_when_second_started = checkpoint_is_complete(dir("step-1"));
  };
  std::thread opener([&] { gate.open.set_value(); });
  w.submit(dir("step-2"), CheckpointSnapshot::copy_of(s.st), watch);
  opener.join();
  EXPECT_TRUE(checkpoint_is_complete(dir("step-1")));  // submit returned only after it
  EXPECT_EQ(w.wait(), dir("step-2"));
  EXPECT_TRUE(first_complete_when_second_started);
  EXPECT_FALSE(w.wait().has_value());  // nothing pending any more
  EXPECT_NE(bytes_of(fs::path(dir("step-1")) / "model.safetensors"),
            bytes_of(fs::path(dir("step-2")) / "model.safetensors"));
}

TEST_F(AsyncCheckpoint, PollReportsTheFinishedWriteOnce) {
  State s(6);
  AsyncCheckpointWriter w;
  w.submit(dir("a"), CheckpointSnapshot::copy_of(s.st));
  std::optional<std::string> done;
  while (!(done = w.poll())) std::this_thread::yield();
  EXPECT_EQ(*done, dir("a"));
  EXPECT_TRUE(checkpoint_is_complete(dir("a")));
  EXPECT_FALSE(w.poll().has_value());
}

TEST_F(AsyncCheckpoint, FailedWriteIsRaisedWithTheCheckpointAndTheCause) {
  State s(7);
  std::ofstream(root_ / "not-a-dir") << "x";  // a file where the checkpoint's parent should be
  AsyncCheckpointWriter w;
  const std::string bad = (root_ / "not-a-dir" / "step-00000002").string();
  w.submit(bad, CheckpointSnapshot::copy_of(s.st));
  expect_c5([&] { w.wait(); }, {bad, "Not a directory"});
  EXPECT_FALSE(w.pending());
  // The writer is usable again afterwards.
  w.submit(dir("ok"), CheckpointSnapshot::copy_of(s.st));
  EXPECT_EQ(w.wait(), dir("ok"));
}

TEST_F(AsyncCheckpoint, FailureMidWriteLeavesNoCheckpointAndIsRaisedByTheNextSubmit) {
  State s(8);
  save_checkpoint(dir("step-1"), s.st);
  const std::string before = bytes_of(fs::path(dir("step-1")) / "model.safetensors");
  AsyncCheckpointWriter w;
  SaveOptions fail;
  fail.after_file = [](const std::string& file) {
    if (file == "manifest.json") user_error("disk quota exceeded (simulated)");
  };
  s.train_a_step();
  w.submit(dir("step-2"), CheckpointSnapshot::copy_of(s.st), fail);
  // The next save finds the failure first and does not write its own snapshot.
  expect_c5([&] { w.submit(dir("step-3"), CheckpointSnapshot::copy_of(s.st)); },
            {dir("step-2"), "disk quota exceeded (simulated)"});
  EXPECT_FALSE(fs::exists(dir("step-2")));
  EXPECT_FALSE(fs::exists(dir("step-3")));
  for (const auto& e : fs::directory_iterator(root_))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  EXPECT_EQ(bytes_of(fs::path(dir("step-1")) / "model.safetensors"), before);
}

TEST_F(AsyncCheckpoint, DestructionWaitsForThePendingWrite) {
  State s(9);
  Gate gate;
  std::thread opener;
  {
    AsyncCheckpointWriter w;
    w.submit(dir("last"), CheckpointSnapshot::copy_of(s.st), gate.hold_after("manifest.json"));
    opener = std::thread([&] { gate.open.set_value(); });
  }
  opener.join();
  EXPECT_TRUE(checkpoint_is_complete(dir("last")));
  State loaded(1);
  load_checkpoint(dir("last"), loaded.st);
  EXPECT_EQ(loaded.st.step, 9);
}
