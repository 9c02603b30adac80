// Tests of a recording's header writer (recording_writer.hpp): records walked as records, their tensors renamed and
// ids moved, the header rendered exactly as docs/format.md section 9 lays it out (written out here by hand), a
// recording continued from its file, and commits in place and into the padding.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "safestructures/error.hpp"
#include "safestructures/format.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/recording.hpp"
#include "safestructures/recording_writer.hpp"
#include "safestructures/schema_text.hpp"
#include "safestructures/tree_writer.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

// Keys are std::strings: their names are themselves.
class StringKeys final : public NodeText {
 public:
  std::string key_name(const void* key) const override { return *static_cast<const std::string*>(key); }
  std::string key_shown(const void* key) const override { return quote_name(key_name(key)); }
  std::string type_name(const void*) const override { return "object"; }
};

const StringKeys keys;
const std::string key_x = "x", key_y = "y", key_s = "s";
const std::vector<float> floats = {1.5f, -2.0f};

// A tensor node {"$":"tensor","name":NAME,"fw":"numpy"} at the current path, its bytes `floats`.
void tensor(TreeWriter& w, const void* obj) {
  std::string name = w.free_name();
  const std::size_t at = w.begin_tensor(obj, name);
  w.out.key("fw");
  w.out.string("numpy");
  w.out.end_container(at);
  w.tensors.push_back(test::tensor_of(std::move(name), Dtype::F32, {2}, test::bytes_of(floats)));
}

// {"x": a tensor, "y": 1e-4, "s": [L, L]}, L a shared list [1]: the record walked as a recording walks it.
WrittenTree shared_record(const RecordingWriter& recording) {
  static const int t = 0, list = 0;
  TreeWriter w(100, keys);
  w.write_as_record(recording.last_id());
  const std::size_t at = w.out.begin_object();
  w.enter(nullptr, at, false);
  w.out.key("x");
  w.push_key(&key_x);
  tensor(w, &t);
  w.pop();
  w.out.key("y");
  w.out.float_value(1e-4);
  w.out.key("s");
  const std::size_t s = w.out.begin_array();
  w.enter(nullptr, s, false);
  for (int k = 0; k < 2; ++k) {
    if (w.seen(&list)) continue;
    const std::size_t inner = w.out.begin_array();
    w.enter(&list, inner, false);
    w.out.integer(1);
    w.leave(&list, inner);
  }
  w.leave(nullptr, s);
  w.leave(nullptr, at);
  return std::move(w).finish();
}

// A record that is one tensor at `path` (its parts joined as a dict's keys).
WrittenTree tensor_record(const RecordingWriter& recording, const std::vector<const std::string*>& path) {
  static const int t = 0;
  TreeWriter w(100, keys);
  w.write_as_record(recording.last_id());
  std::vector<std::size_t> opened;
  for (const std::string* key : path) {
    opened.push_back(w.out.begin_object());
    w.enter(nullptr, opened.back(), false);
    w.out.key(*key);
    w.push_key(key);
  }
  tensor(w, &t);
  for (std::size_t k = opened.size(); k-- > 0;) {
    w.pop();
    w.leave(nullptr, opened[k]);
  }
  return std::move(w).finish();
}

void add(RecordingWriter& recording, const RecordingWriter::Stream& stream, const WrittenTree& tree) {
  recording.add(stream, tree, plan_layout(tree.tensors, nullptr));
}

// JSON text as the header's schema string holds it.
std::string escaped(std::string_view json) {
  std::string out;
  append_json_escaped(out, json);
  return out;
}

const std::string metadata_head = "{\"__metadata__\":{\"__safestructures_recording__\":\"1\"";
const std::string document_head = "{\"format\":\"safestructures\",\"version\":2,\"root\":";

std::string shared_node(int index, int id) {
  const std::string name = std::to_string(index) + ".x", ref = std::to_string(id);
  return "{\"x\":{\"$\":\"tensor\",\"name\":\"" + name + "\",\"fw\":\"numpy\"},\"y\":0.0001,\"s\":[{\"$\":\"list\",\"#\":" + ref +
         ",\"items\":[1]},{\"$\":\"ref\",\"#\":" + ref + "}]}";
}

TEST(RecordingWriter, PlainRecordsRenderTheHeaderOfSection9) {
  RecordingWriter recording({{"z", "last"}, {"A", "first \"q\"\n"}}, 0, 4096);
  add(recording, std::nullopt, shared_record(recording));
  add(recording, std::nullopt, shared_record(recording));
  EXPECT_EQ(recording.count(), 2u);
  EXPECT_EQ(recording.count(std::nullopt), 2u);
  EXPECT_EQ(recording.last_id(), 2u);
  EXPECT_EQ(recording.data_size(), 16u);
  const std::string schema = escaped(document_head + "[" + shared_node(0, 1) + "," + shared_node(1, 2) + "]}");
  // The recording's key first, then the others sorted ("A" < "__safestructures__" < "z"), the padding, the entries.
  const std::string metadata = metadata_head + ",\"A\":\"first \\\"q\\\"\\n\",\"__safestructures__\":\"" + schema + "\",\"z\":\"last\"}";
  EXPECT_EQ(recording.header(4096), metadata + "," + test::entry("__safestructures_padding__", "U8", "[4096]", 0, 4096) + "," +
                                        test::entry("0.x", "F32", "[2]", 4096, 4104) + "," + test::entry("1.x", "F32", "[2]", 4104, 4112) + "}");
  EXPECT_EQ(recording.header(0), metadata + "," + test::entry("0.x", "F32", "[2]", 0, 8) + "," + test::entry("1.x", "F32", "[2]", 8, 16) + "}");
  // A stream cannot join plain records.
  EXPECT_TRUE(test::fails_with([&] { recording.check_stream("s"); }, ErrorCode::InvalidArgument, {"not both"}));
}

TEST(RecordingWriter, StreamsPrefixTheirNamesAndNamesThatMeetGetASuffix) {
  RecordingWriter recording({}, 0, 0);
  const std::string zero = "0", ctl = "c\x01";
  add(recording, "a", tensor_record(recording, {&zero, &key_x}));  // a.0.0.x
  add(recording, "a.0", tensor_record(recording, {&key_x}));       // a.0.0.x again: a.0.0.x~1
  add(recording, ctl, tensor_record(recording, {&key_y}));         // the stream's control character made '_'
  EXPECT_EQ(recording.count("a"), 1u);
  EXPECT_EQ(recording.count("a.0"), 1u);
  EXPECT_EQ(recording.count(std::nullopt), 0u);
  const auto node = [](std::string_view path_json, const std::string& name) {
    std::string out = "[";
    out.append(path_json).append("{\"$\":\"tensor\",\"name\":\"").append(name).append("\",\"fw\":\"numpy\"}");
    out.append(static_cast<std::size_t>(std::count(path_json.begin(), path_json.end(), '{')), '}');
    return out.append("]");
  };
  const std::string root = "{\"a\":" + node("{\"0\":{\"x\":", "a.0.0.x") + ",\"a.0\":" + node("{\"x\":", "a.0.0.x~1") +
                           ",\"c\\u0001\":" + node("{\"y\":", "c_.0.y") + "}";
  EXPECT_EQ(recording.header(0), metadata_head + ",\"__safestructures__\":\"" + escaped(document_head + root + "}") + "\"}," +
                                     test::entry("a.0.0.x", "F32", "[2]", 0, 8) + "," + test::entry("a.0.0.x~1", "F32", "[2]", 8, 16) +
                                     "," + test::entry("c_.0.y", "F32", "[2]", 16, 24) + "}");
  EXPECT_TRUE(test::fails_with([&] { recording.check_stream(std::nullopt); }, ErrorCode::InvalidArgument, {"not both"}));
}

TEST(RecordingWriter, AStreamNamedTagMemberPutsTheRootInPairForm) {
  RecordingWriter recording({}, 0, 0);
  const std::string dollar(tag_member);
  add(recording, dollar, tensor_record(recording, {}));
  add(recording, "b", tensor_record(recording, {}));
  const std::string root = "{\"$\":\"dict\",\"items\":[[\"$\",[{\"$\":\"tensor\",\"name\":\"$.0.root\",\"fw\":\"numpy\"}]],"
                           "[\"b\",[{\"$\":\"tensor\",\"name\":\"b.0.root\",\"fw\":\"numpy\"}]]]}";
  EXPECT_NE(recording.header(0).find(escaped(document_head + root + "}")), std::string::npos) << recording.header(0);
}

TEST(RecordingWriter, RecordFloatsAreWrittenAsPythonsRepr) {
  const std::vector<std::pair<double, std::string>> cases = {
      {0.0, "0.0"},       {-0.0, "-0.0"},        {1e-4, "0.0001"},     {2.5e-5, "2.5e-05"},     {1e15, "1000000000000000.0"},
      {1e16, "1e+16"},    {1.5e300, "1.5e+300"}, {5e-324, "5e-324"},   {0.1, "0.1"},            {1.2345678901234568e+20, "1.2345678901234568e+20"},
      {1.0 / 7, "0.14285714285714285"},         {-123.0, "-123.0"},   {9007199254740993.0, "9007199254740992.0"}};
  for (const auto& [value, text] : cases) {
    char buffer[python_float_room];
    EXPECT_EQ(python_float_text(value, buffer), text) << value;
  }
}

// The recording's file as a writer makes it, then its records' data and commits.
struct RecordingFile {
  std::filesystem::path path = test::test_dir() / "rec.safetensors";
  RecordingWriter recording;
  int fd = -1;
  explicit RecordingFile(std::uint64_t reserve) : recording({}, 0, reserve) {
    const RecordingWriter::Rewrite& r = recording.rewrite();
    test::write_file_bytes(path, test::raw_file(r.room, r.header + std::string(r.room - r.header.size(), ' ')));
    std::filesystem::resize_file(path, 8 + r.room + r.padding);
    recording.rewritten();
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  }
  ~RecordingFile() { ::close(fd); }
  void append(const RecordingWriter::Stream& stream) {
    const WrittenTree tree = shared_record(recording);
    const Layout layout = plan_layout(tree.tensors, nullptr);
    write_recording_data(fd, recording.data_end(), layout, tree.tensors);
    recording.add(stream, tree, layout);
  }
  std::uint64_t room() const { return load_le64(test::read_file_bytes(path).data()); }
};

TEST(RecordingWriter, CommitsInPlaceThenGrowsIntoThePaddingWithoutMovingData) {
  RecordingFile file(1 << 20);
  const std::uint64_t data_start = file.recording.data_end();
  file.append(std::nullopt);
  ASSERT_TRUE(file.recording.commit(file.fd, false));
  EXPECT_EQ(file.room(), 4088u);
  EXPECT_EQ(Reader::open(file.path).header().tensors.size(), 2u);  // the padding and 0.x
  while (file.recording.header(0).size() <= 4088) file.append(std::nullopt);
  ASSERT_TRUE(file.recording.commit(file.fd, false));
  EXPECT_GT(file.room(), 4088u);
  EXPECT_EQ((8 + file.room()) % 4096, 0u);
  // The room took pages of the padding: the records' data starts where it did.
  const std::uint64_t count = file.recording.count();
  EXPECT_EQ(file.recording.data_end(), data_start + 8 * count);
  const Reader reader = Reader::open(file.path);
  EXPECT_EQ(reader.header().tensors.size(), count + 1);
  const TensorInfo* last = reader.header().find(std::to_string(count - 1) + ".x");
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(reader.header().data_offset() + last->begin, data_start + 8 * (count - 1));
  const auto expected = test::bytes_of(floats);
  EXPECT_EQ(test::tensor_bytes(test::read_file_bytes(file.path), reader.header(), last->name), test::Bytes(expected.begin(), expected.end()));
}

TEST(RecordingWriter, AUsedUpPaddingAsksForTheFileWrittenAnew) {
  RecordingFile file(4096);
  while (file.recording.header(4096).size() <= 4088 + 4096) file.append(std::nullopt);
  // fsync: no insert; the data must move behind a larger room and a fresh padding.
  EXPECT_FALSE(file.recording.commit(file.fd, true));
  const RecordingWriter::Rewrite& r = file.recording.rewrite();
  EXPECT_EQ(r.padding, 4096u);
  EXPECT_EQ((8 + r.room) % 4096, 0u);
  EXPECT_GE(r.room, 2 * r.header.size());
  EXPECT_EQ(r.data_at, 8 + 4088 + 4096u);
  EXPECT_EQ(r.data_size, 8 * file.recording.count());
  EXPECT_EQ(r.header, file.recording.header(4096));
}

TEST(RecordingWriter, ContinuingAFileTakesBackItsState) {
  RecordingFile file(8192);
  file.append("s");
  file.append("t");
  file.append("s");
  ASSERT_TRUE(file.recording.commit(file.fd, false));
  RecordingWriter continued(Reader::open(file.path).header(), std::nullopt, 8192, "rec");
  EXPECT_EQ(continued.header(8192), file.recording.header(8192));
  EXPECT_EQ(continued.last_id(), 3u);
  EXPECT_EQ(continued.count("s"), 2u);
  EXPECT_EQ(continued.data_end(), file.recording.data_end());
  // One more record on both: the same header.
  const WrittenTree tree = shared_record(continued);
  add(continued, "t", tree);
  add(file.recording, "t", tree);
  EXPECT_EQ(continued.header(8192), file.recording.header(8192));
  // The caller's metadata replaces the file's; a reserved key is refused.
  EXPECT_NE(RecordingWriter(Reader::open(file.path).header(), Metadata{{"m", "v"}}, 0, "rec").header(0).find("\"m\":\"v\""), std::string::npos);
  EXPECT_TRUE(test::fails_with([] { check_user_metadata({{std::string(schema_metadata_key), "x"}}); }, ErrorCode::InvalidMetadata));
}

// A recording's header from its JSON `text`, padded with spaces to a multiple of 8 bytes, as every recording's is.
Header padded(std::string text, std::size_t data_size = 0) {
  text.append((8 - text.size() % 8) % 8, ' ');
  return test::parse(text, data_size);
}

// A recording whose schema document (`document`, JSON) was written by another writer, its header as the file holds it.
Header recording_of(const std::string& document) {
  return padded("{\"__metadata__\":{\"__safestructures__\":\"" + escaped(document) + "\",\"__safestructures_recording__\":\"1\"}}");
}

TEST(RecordingWriter, ContinuingKeepsEachRecordsTextAsWrittenWhateverItsSpelling) {
  // Keys spelled with escapes, spaces between tokens, members in another order, strings with escapes: the streams are
  // found as JSON reads them, and each record is kept exactly as written (its spaces inside too).
  const std::string records = "[ 1 , {\"a\" : \"x\\\"y\"} ,\"s\\t\\u00e9\" ,[ ], -2.5e-05 ]";
  RecordingWriter list(recording_of("{\"\\u0072oot\" : " + records + " , \"format\":\"safestructures\",\"version\":2}"),
                       std::nullopt, 0, "f");
  EXPECT_EQ(list.count(), 5u);
  EXPECT_EQ(list.count(std::nullopt), 5u);
  const std::string kept = "[1,{\"a\" : \"x\\\"y\"},\"s\\t\\u00e9\",[ ],-2.5e-05]";
  EXPECT_EQ(list.header(0), metadata_head + ",\"__safestructures__\":\"" + escaped(document_head + kept + "}") + "\"}}");
  // Streams as the root's members, one spelled with an escape.
  RecordingWriter members(recording_of(document_head + "{\"\\u0061\" : [ {\"$\":\"list\",\"#\":7,\"items\":[]} ],\"b\":[2,3]}}"),
                          std::nullopt, 0, "f");
  EXPECT_EQ(members.count("a"), 1u);
  EXPECT_EQ(members.count("b"), 2u);
  EXPECT_EQ(members.last_id(), 7u);
  EXPECT_EQ(members.header(0), metadata_head + ",\"__safestructures__\":\"" +
                                   escaped(document_head + "{\"a\":[{\"$\":\"list\",\"#\":7,\"items\":[]}],\"b\":[2,3]}}") + "\"}}");
  // Streams in pair form, its "items" spelled with an escape and after another member.
  RecordingWriter pairs(
      recording_of(document_head + "{\"$\":\"dict\",\"x\":0,\"\\u0069tems\":[[\"$\",[ \"r\" ]],[\"c\",[4]]]}}"), std::nullopt, 0, "f");
  EXPECT_EQ(pairs.count("$"), 1u);
  EXPECT_EQ(pairs.count("c"), 1u);
  EXPECT_EQ(pairs.header(0), metadata_head + ",\"__safestructures__\":\"" +
                                 escaped(document_head + "{\"$\":\"dict\",\"items\":[[\"$\",[\"r\"]],[\"c\",[4]]]}}") + "\"}}");
}

TEST(RecordingWriter, ContinuingRefusesWhatIsNotARecording) {
  const std::string plain = "{\"__metadata__\":{\"k\":\"v\"}," + test::entry("t", "U8", "[4]", 0, 4) + "}";
  EXPECT_TRUE(test::fails_with([&] { RecordingWriter(test::parse(plain, 4), std::nullopt, 0, "f.safetensors"); }, ErrorCode::SchemaInvalid,
                               {"f.safetensors", "not a recording"}));
  const std::string key = ",\"__safestructures_recording__\":\"1\"";
  const std::string schema = ",\"__safestructures__\":\"" + escaped(document_head + "[]}") + "\"";
  // A tensor before the padding: it lies in the data the padding should start.
  const std::string inside = "{\"__metadata__\":{\"k\":\"v\"" + key + schema + "}," + test::entry("t", "U8", "[4]", 0, 4) + "," +
                             test::entry("__safestructures_padding__", "U8", "[4096]", 4, 4100) + "}";
  EXPECT_TRUE(test::fails_with([&] { RecordingWriter(padded(inside, 4100), std::nullopt, 0, "f"); }, ErrorCode::SchemaInvalid,
                               {"does not start its data"}));
  const std::string root_int = "{\"__metadata__\":{\"__safestructures__\":\"" + escaped(document_head + "3}") + "\"" + key + "}}";
  EXPECT_TRUE(test::fails_with([&] { RecordingWriter(padded(root_int), std::nullopt, 0, "f"); }, ErrorCode::SchemaInvalid,
                               {"a list of records or a dict of lists"}));
  // A room that is not a multiple of 8: its commits' journals would be ignored by the reader (no crash safety).
  const std::string unpadded = "{\"__metadata__\":{\"__safestructures__\":\"" + escaped(document_head + "[]}") + "\"" + key + "}}";
  ASSERT_NE(unpadded.size() % 8, 0u);
  EXPECT_TRUE(test::fails_with([&] { RecordingWriter(test::parse(unpadded), std::nullopt, 0, "f"); }, ErrorCode::SchemaInvalid,
                               {"f: its header takes " + std::to_string(unpadded.size()) + " bytes, not a multiple of 8"}));
  EXPECT_NO_THROW(RecordingWriter(padded(unpadded), std::nullopt, 0, "f"));
}

}  // namespace
}  // namespace safestructures
