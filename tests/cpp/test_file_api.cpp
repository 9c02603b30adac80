// Tests of the C++ reading API (file.hpp): kinds and values of every node, containers, refs, tensors as zero-copy
// views, plain safetensors files, and errors that name the path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "safestructures/file.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/structure.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::Bytes;
using test::fails_with;
using test::tensor_of;

// A structured file whose schema root is `root_json` (written as is), holding `tensors`.
Bytes structured_file(std::string_view root_json, std::vector<WriteTensor> tensors = {}, const Metadata& metadata = {}) {
  const std::string document = R"({"format":"safestructures","version":2,"root":)" + std::string(root_json) + "}";
  const StructuredLayout plan = plan_structured(std::move(tensors), metadata, document);
  Bytes out(plan.layout.file_size());
  write_structured_into(out, plan);
  return out;
}

File open_json(std::string_view root_json, std::vector<WriteTensor> tensors = {}) {
  return File::from_bytes(structured_file(root_json, std::move(tensors)));
}

TEST(FileApi, Scalars) {
  const File file = open_json(
      R"({"n":null,"t":true,"f":false,"i":-5,"x":1.5,"s":"h\u00e9","big":{"$":"int","hex":"-0x1F"},"small":9223372036854775807,)"
      R"("inf":{"$":"float","v":"-inf"},"nan":{"$":"float","v":"nan"},"payload":{"$":"float","v":"nan","bits":"fff8000000000001"},)"
      R"("cp":{"$":"str","cp":[104,55296]},"b":{"$":"bytes","b64":"aGk="},"ba":{"$":"bytearray","b64":""}})");
  const TreeNode root = file.root();
  EXPECT_TRUE(file.structured());
  EXPECT_EQ(root.kind(), Kind::Dict);
  EXPECT_EQ(root.size(), 14u);
  EXPECT_TRUE(root["n"].is_null());
  EXPECT_TRUE(root["t"].as_bool());
  EXPECT_FALSE(root["f"].as_bool());
  EXPECT_EQ(root["i"].as_int(), -5);
  EXPECT_EQ(root["i"].big_int_hex(), "-0x5");
  EXPECT_EQ(root["small"].as_int(), INT64_MAX);
  EXPECT_EQ(root["x"].as_double(), 1.5);
  EXPECT_EQ(root["s"].as_string(), "h\xc3\xa9");
  EXPECT_EQ(root["big"].kind(), Kind::BigInt);
  EXPECT_EQ(root["big"].big_int_hex(), "-0x1F");
  EXPECT_EQ(root["inf"].kind(), Kind::Float);
  EXPECT_EQ(root["inf"].as_double(), -HUGE_VAL);
  EXPECT_TRUE(std::isnan(root["nan"].as_double()));
  const double payload = root["payload"].as_double();
  std::uint64_t bits = 0;
  std::memcpy(&bits, &payload, sizeof bits);
  EXPECT_EQ(bits, 0xfff8000000000001ull);
  // A lone surrogate comes back in its 3-byte (WTF-8) form.
  EXPECT_EQ(root["cp"].kind(), Kind::String);
  EXPECT_EQ(root["cp"].as_string(), "h\xed\xa0\x80");
  EXPECT_EQ(root["b"].kind(), Kind::Bytes);
  EXPECT_EQ(test::to_text(root["b"].as_bytes()), "hi");
  EXPECT_EQ(root["ba"].kind(), Kind::ByteArray);
  EXPECT_TRUE(root["ba"].as_bytes().empty());
  EXPECT_EQ(root["s"].tag(), "");
  EXPECT_EQ(root["big"].tag(), "int");
  EXPECT_EQ(kind_name(root["big"].kind()), "bigint");
  EXPECT_EQ(kind_name(root["s"].kind()), "str");
}

TEST(FileApi, Containers) {
  const File file = open_json(
      R"({"l":[1,[2,3]],"t":{"$":"tuple","items":[1,"a"]},"s":{"$":"set","items":[3]},"fs":{"$":"frozenset","items":[]},)"
      R"("d":{"$":"dict","items":[[1,"one"],[{"$":"tuple","items":[1,2]},"pair"],["k","v"]]},"dq":{"$":"deque","maxlen":null,"items":[5]},)"
      R"("od":{"$":"OrderedDict","items":[["z",1]]},"empty":{}})");
  const TreeNode root = file.root();
  const TreeNode l = root["l"];
  EXPECT_EQ(l.kind(), Kind::List);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].as_int(), 1);
  EXPECT_EQ(l[1][1].as_int(), 3);
  EXPECT_EQ(l.at(1).items().size(), 2u);
  EXPECT_EQ(l[1][1].path(), R"($["l"][1][1])");
  EXPECT_EQ(root["t"].kind(), Kind::Tuple);
  EXPECT_EQ(root["t"][1].as_string(), "a");
  EXPECT_EQ(root["s"].kind(), Kind::Set);
  EXPECT_EQ(root["fs"].kind(), Kind::FrozenSet);
  EXPECT_EQ(root["fs"].size(), 0u);
  EXPECT_EQ(root["dq"].kind(), Kind::Deque);
  EXPECT_EQ(root["dq"][0].as_int(), 5);
  EXPECT_TRUE(root["dq"].is_sequence());

  const TreeNode d = root["d"];
  EXPECT_EQ(d.kind(), Kind::Dict);
  EXPECT_TRUE(d.is_mapping());
  ASSERT_EQ(d.size(), 3u);
  const std::vector<Entry> entries = d.entries();
  EXPECT_EQ(entries[0].key.as_int(), 1);
  EXPECT_EQ(entries[0].value.as_string(), "one");
  EXPECT_EQ(entries[0].value.path(), R"($["d"][1])");
  EXPECT_EQ(entries[1].key.kind(), Kind::Tuple);
  EXPECT_EQ(entries[1].key[1].as_int(), 2);
  EXPECT_EQ(d["k"].as_string(), "v");
  EXPECT_TRUE(d.contains("k"));
  EXPECT_FALSE(d.contains("one"));
  EXPECT_FALSE(d.find("missing").has_value());
  EXPECT_EQ(root["od"].kind(), Kind::OrderedDict);
  EXPECT_EQ(root["od"]["z"].as_int(), 1);
  EXPECT_EQ(root["empty"].size(), 0u);
  EXPECT_TRUE(root["empty"].entries().empty());
  // Plain-object keys are string nodes.
  const std::vector<Entry> top = root.entries();
  ASSERT_EQ(top.size(), 8u);
  EXPECT_EQ(top[0].key.kind(), Kind::String);
  EXPECT_EQ(top[7].key.as_string(), "empty");
}

TEST(FileApi, TaggedKindsAndFields) {
  const File file = open_json(
      R"({"dc":{"$":"dataclass","type":"pkg.Out","fields":{"logits":[1.5],"n":3}},)"
      R"("nt":{"$":"namedtuple","type":"pkg.P","fields":["x","y"],"items":[1,2]},)"
      R"("e":{"$":"enum","type":"pkg.Color","name":"RED","value":1},"date":{"$":"date","iso":"2024-01-02"},)"
      R"("c":{"$":"complex","re":1.0,"im":-2.0},"dtype":{"$":"torch.dtype","name":"bfloat16"},"ell":{"$":"Ellipsis"}})");
  const TreeNode root = file.root();
  const TreeNode dc = root["dc"];
  EXPECT_EQ(dc.kind(), Kind::Dataclass);
  EXPECT_EQ(dc.type_name(), "pkg.Out");
  EXPECT_EQ(dc["n"].as_int(), 3);
  EXPECT_EQ(dc["logits"][0].as_double(), 1.5);
  // "fields" is a wrapper: it is not part of the path.
  EXPECT_EQ(dc["logits"][0].path(), R"($["dc"]["logits"][0])");
  ASSERT_EQ(dc.entries().size(), 2u);
  EXPECT_EQ(dc.entries()[1].key.as_string(), "n");
  EXPECT_EQ(root["nt"].kind(), Kind::NamedTuple);
  EXPECT_EQ(root["nt"].type_name(), "pkg.P");
  EXPECT_EQ(root["nt"][1].as_int(), 2);
  EXPECT_EQ(root["nt"].field("fields")->items()[0].as_string(), "x");
  EXPECT_EQ(root["e"].kind(), Kind::Enum);
  EXPECT_EQ(root["e"].field("name")->as_string(), "RED");
  EXPECT_EQ(root["e"].field("value")->as_int(), 1);
  EXPECT_EQ(root["e"].field("name")->path(), R"($["e"].name)");
  EXPECT_FALSE(root["e"].field("missing").has_value());
  EXPECT_EQ(root["date"].kind(), Kind::Date);
  EXPECT_EQ(root["date"].field("iso")->as_string(), "2024-01-02");
  EXPECT_EQ(root["date"].type_name(), "");
  EXPECT_EQ(root["c"].kind(), Kind::Complex);
  EXPECT_EQ(root["c"].field("im")->as_double(), -2.0);
  ASSERT_EQ(root["c"].fields().size(), 2u);
  EXPECT_EQ(root["c"].fields()[0].key.as_string(), "re");
  EXPECT_EQ(root["dtype"].kind(), Kind::TorchDtype);
  EXPECT_EQ(kind_name(Kind::TorchDtype), "torch.dtype");
  EXPECT_EQ(root["ell"].kind(), Kind::Ellipsis);
  EXPECT_TRUE(root["ell"].fields().empty());
}

TEST(FileApi, ViewsAreCheckedAgainstTheirStorage) {
  const std::vector<float> w{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  const auto view_of = [&](std::string_view fields) {
    return open_json(R"({"a":{"$":"tensor","name":"a","fw":"torch"},"b":{"$":"tensor","fw":"torch","storage":"a",)" + std::string(fields) + "}}",
                     {tensor_of("a", Dtype::F32, {3, 4}, test::bytes_of(w))});
  };
  const Tensor row = view_of(R"("offset":4,"shape":[4],"stride":[1])").root()["b"].as_tensor();
  EXPECT_TRUE(row.is_view());
  EXPECT_EQ(row.name(), "a");
  EXPECT_EQ(row.view_offset(), 4u);
  EXPECT_EQ(row.logical_shape(), (std::vector<std::uint64_t>{4}));
  EXPECT_EQ(row.view_stride(), (std::vector<std::int64_t>{1}));
  const Tensor column = view_of(R"("offset":11,"shape":[3],"stride":[-4])").root()["b"].as_tensor();
  EXPECT_EQ(column.view_offset(), 11u);
  EXPECT_EQ(column.view_stride(), (std::vector<std::int64_t>{-4}));
  EXPECT_EQ(view_of(R"("offset":12,"shape":[0,5],"stride":[99,99])").root()["b"].as_tensor().logical_shape(), (std::vector<std::uint64_t>{0, 5}));
  // Crafted geometry (crafted case 52): every element a view reaches lies within its storage of 12 elements.
  const auto refused = [&](std::string_view fields, std::string_view message) {
    return fails_with([&] { (void)view_of(fields).root()["b"].as_tensor(); }, ErrorCode::SchemaInvalid, {R"(at $["b"]: )", message});
  };
  EXPECT_TRUE(refused(R"("offset":4,"shape":[9],"stride":[1])", "a view of shape [9] and stride [1] at offset 4 reaches outside its storage of 12 elements"));
  EXPECT_TRUE(refused(R"("offset":2,"shape":[3],"stride":[-4])", "a view of shape [3] and stride [-4] at offset 2 reaches before its storage"));
  EXPECT_TRUE(refused(R"("offset":0,"shape":[3,3],"stride":[4611686018427387904,1])", "reaches outside its storage"));
  EXPECT_TRUE(refused(R"("offset":13,"shape":[0],"stride":[1])", "reaches outside"));
  EXPECT_TRUE(refused(R"("offset":-1,"shape":[1],"stride":[1])", "\"offset\" must be a non-negative int"));
  EXPECT_TRUE(refused(R"("shape":[1],"stride":[1])", "\"offset\""));
  EXPECT_TRUE(refused(R"("offset":0,"shape":[1,-2],"stride":[1,1])", "\"shape\" must be a list of non-negative ints"));
  EXPECT_TRUE(refused(R"("offset":0,"shape":[1,2],"stride":[1])", "\"stride\" must be a list of ints, one per dimension"));
  EXPECT_TRUE(refused(R"("offset":0,"shape":[1],"stride":[1.5])", "\"stride\""));
}

TEST(FileApi, DtypesOtherThanTheStoredOneAreCheckedAgainstItsBytes) {
  const Bytes raw = test::iota_bytes(32);
  const std::vector<float> w{0, 1, 2, 3};
  const auto tensor = [&](std::string_view fields, Dtype stored = Dtype::U8) {
    const std::span<const std::byte> bytes = stored == Dtype::U8 ? std::span<const std::byte>(raw) : test::bytes_of(w);
    const std::vector<std::uint64_t> shape{stored == Dtype::U8 ? 32u : 4u};
    return open_json(R"({"t":{"$":"tensor","name":"t","fw":"numpy",)" + std::string(fields) + "}}", {tensor_of("t", stored, shape, bytes)})
        .root()["t"]
        .as_tensor();
  };
  EXPECT_EQ(tensor(R"("dtype":"<c16","shape":[2])").logical_shape(), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(tensor(R"("dtype":"<U2","shape":[2,2])").logical_shape(), (std::vector<std::uint64_t>{2, 2}));
  EXPECT_EQ(tensor(R"("dtype":"int4","shape":[32])").logical_shape(), (std::vector<std::uint64_t>{32}));
  EXPECT_EQ(tensor(R"("dtype":"<M8[ns]","shape":[4])").logical_shape(), (std::vector<std::uint64_t>{4}));
  EXPECT_EQ(tensor(R"("dtype":">f4")", Dtype::F32).logical_shape(), (std::vector<std::uint64_t>{4}));
  // A node's shape beside no dtype of its own is not the tensor's, as the Python loads read it.
  EXPECT_EQ(tensor(R"("shape":[1000000])", Dtype::F32).logical_shape(), (std::vector<std::uint64_t>{4}));
  // Crafted: a shape whose elements would reach past the 32 bytes, a dtype the format never names, a dtype whose
  // elements differ in size from the stored ones.
  const auto refused = [&](std::string_view fields, std::string_view message, Dtype stored = Dtype::U8) {
    return fails_with([&] { (void)tensor(fields, stored); }, ErrorCode::SchemaInvalid, {R"(at $["t"]: )", message});
  };
  EXPECT_TRUE(refused(R"("dtype":"<c16","shape":[1000])", R"(shape [1000] of "<c16" needs 16000 bytes, the tensor holds 32)"));
  EXPECT_TRUE(refused(R"("dtype":"<c16","shape":[4611686018427387904,4])", "needs more than 2^64 bytes"));
  EXPECT_TRUE(refused(R"("dtype":"<c16")", R"(shape [32] of "<c16" needs 512 bytes)"));
  EXPECT_TRUE(refused(R"("dtype":"|O8","shape":[4])", R"(dtype "|O8" is not one that safestructures stores)"));
  EXPECT_TRUE(refused(R"("dtype":"V16","shape":[2])", "is not one that safestructures stores"));
  EXPECT_TRUE(refused(R"("dtype":">i8")", R"(shape [4] of ">i8" needs 32 bytes, the tensor holds 16)", Dtype::F32));
  const std::span<const std::byte> storage = test::bytes_of(w);
  const auto view = open_json(R"({"a":{"$":"tensor","name":"a","fw":"torch"},"b":{"$":"tensor","fw":"torch","storage":"a","dtype":"<c16",)"
                              R"("offset":0,"shape":[1],"stride":[1]}})",
                              {tensor_of("a", Dtype::F32, {4}, storage)});
  EXPECT_TRUE(fails_with([&] { (void)view.root()["b"].as_tensor(); }, ErrorCode::SchemaInvalid, {R"(dtype "<c16" does not match the stored dtype F32)"}));
}

TEST(FileApi, TensorsAreViewsOfTheBuffer) {
  const std::vector<float> w{1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  const Bytes blob = test::iota_bytes(100);
  const Bytes file_bytes = structured_file(
      R"({"w":{"$":"tensor","name":"w","fw":"torch"},"c":{"$":"tensor","name":"c","fw":"numpy","dtype":"<c16","shape":[2]},)"
      R"("b":{"$":"bytes","tensor":"blob"}})",
      {tensor_of("w", Dtype::F32, {2, 3}, test::bytes_of(w)), tensor_of("c", Dtype::U8, {32}, std::span(blob).first(32)),
       tensor_of("blob", Dtype::U8, {100}, blob)});
  auto owner = std::make_shared<const Bytes>(file_bytes);
  const File file = File::from_buffer(owner, *owner);
  const Tensor t = file.root()["w"].as_tensor();
  EXPECT_EQ(t.name(), "w");
  EXPECT_EQ(t.dtype(), Dtype::F32);
  EXPECT_EQ(t.shape(), (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(t.elements(), 6u);
  EXPECT_EQ(t.framework(), "torch");
  EXPECT_EQ(t.numpy_dtype(), "");
  EXPECT_EQ(t.logical_shape(), t.shape());
  EXPECT_FALSE(t.is_view());
  // Zero-copy: the span lies inside the caller's buffer.
  EXPECT_GE(t.bytes().data(), owner->data());
  EXPECT_LE(t.bytes().data() + t.bytes().size(), owner->data() + owner->size());
  const auto values = t.values<float>();
  EXPECT_EQ(std::vector<float>(values.begin(), values.end()), w);
  EXPECT_TRUE(fails_with([&] { (void)t.values<double>(); }, ErrorCode::WrongKind, {R"($["w"])", "F32"}));

  const Tensor c = file.root()["c"].as_tensor();
  EXPECT_EQ(c.numpy_dtype(), "<c16");
  EXPECT_EQ(c.logical_shape(), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(c.shape(), (std::vector<std::uint64_t>{32}));
  EXPECT_EQ(file.root()["b"].as_bytes(), blob);

  // A tensor keeps the file alive after every node and the File are gone (ASan would see a read of freed memory).
  const Tensor kept = File::from_bytes(file_bytes).root()["w"].as_tensor();
  EXPECT_EQ(Bytes(kept.bytes().begin(), kept.bytes().end()), Bytes(test::bytes_of(w).begin(), test::bytes_of(w).end()));
}

TEST(FileApi, RefsAreFollowed) {
  const File file = open_json(
      R"({"a":{"$":"list","#":1,"items":[1,{"$":"ref","#":1}]},"b":{"$":"ref","#":1},)"
      R"("t":{"$":"tensor","#":2,"name":"w"},"u":{"$":"ref","#":2},"d":{"$":"dict","#":3,"items":[["self",{"$":"ref","#":3}]]}})",
      {tensor_of("w", Dtype::U8, {2}, test::iota_bytes(2))});
  const TreeNode root = file.root();
  EXPECT_EQ(root["a"].shared_id(), 1);
  EXPECT_FALSE(root["a"].via_ref());
  const TreeNode b = root["b"];
  EXPECT_TRUE(b.via_ref());
  EXPECT_EQ(b.kind(), Kind::List);
  EXPECT_EQ(b.shared_id(), 1);
  EXPECT_EQ(b[0].as_int(), 1);
  // A list that holds itself: a cycle, followed one step at a time.
  EXPECT_TRUE(root["a"][1].via_ref());
  EXPECT_EQ(root["a"][1][1][0].as_int(), 1);
  EXPECT_EQ(root["u"].as_tensor().name(), "w");
  EXPECT_EQ(root["u"].as_tensor().bytes().data(), root["t"].as_tensor().bytes().data());
  EXPECT_EQ(root["d"]["self"]["self"].kind(), Kind::Dict);
}

TEST(FileApi, BadRefs) {
  // Undefined, defined later, and inside the immutable tuple that defines it (Python cannot rebuild that).
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"a":[1,{"$":"ref","#":7}]})").root()["a"][1]; }, ErrorCode::SchemaInvalid,
                         {R"(at $["a"][1])", "#7"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"b":{"$":"ref","#":1},"a":{"$":"list","#":1,"items":[]}})").root()["b"]; },
                         ErrorCode::SchemaInvalid, {R"(at $["b"])", "not defined before"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"tuple","#":1,"items":[{"$":"ref","#":1}]})").root()[0]; }, ErrorCode::SchemaInvalid,
                         {"at $[0]", "#1"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"a":{"$":"ref"}})").root()["a"]; }, ErrorCode::SchemaInvalid, {"integer \"#\""}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"([{"$":"list","#":1,"items":[]},{"$":"tuple","#":1,"items":[]}])"); }, ErrorCode::SchemaInvalid,
                         {"#1 is defined twice"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"([{"$":"list","#":0,"items":[]}])"); }, ErrorCode::SchemaInvalid, {"positive integer"}));
}

TEST(FileApi, WrongKindMissingKeyAndOutOfRange) {
  const File file = open_json(R"({"model":{"layers":[{"w":"text"}]},"n":1})");
  const TreeNode root = file.root();
  const TreeNode text = root["model"]["layers"][0]["w"];
  EXPECT_TRUE(fails_with([&] { (void)text.as_int(); }, ErrorCode::WrongKind, {R"(at $["model"]["layers"][0]["w"]: expected an int, found str)"}));
  EXPECT_TRUE(fails_with([&] { (void)text.as_tensor(); }, ErrorCode::WrongKind, {"expected a tensor"}));
  EXPECT_TRUE(fails_with([&] { (void)text.size(); }, ErrorCode::WrongKind));
  EXPECT_TRUE(fails_with([&] { (void)root["n"].as_double(); }, ErrorCode::WrongKind, {R"($["n"])", "expected a float, found int"}));
  EXPECT_TRUE(fails_with([&] { (void)root["n"].as_bool(); }, ErrorCode::WrongKind));
  EXPECT_TRUE(fails_with([&] { (void)root["n"].field("x"); }, ErrorCode::WrongKind, {"a tagged node"}));
  EXPECT_TRUE(fails_with([&] { (void)root[0]; }, ErrorCode::WrongKind, {"at $: expected a sequence"}));
  EXPECT_TRUE(fails_with([&] { (void)root["model"]["layers"]["w"]; }, ErrorCode::WrongKind, {R"(at $["model"]["layers"])"}));
  EXPECT_TRUE(fails_with([&] { (void)root["model"]["missing"]; }, ErrorCode::KeyNotFound, {R"(at $["model"]: no key "missing")"}));
  EXPECT_TRUE(fails_with([&] { (void)root["model"]["layers"][1]; }, ErrorCode::IndexOutOfRange,
                         {R"(at $["model"]["layers"])", "index 1 is out of range for a list of 1 items"}));
  EXPECT_TRUE(fails_with([&] { (void)open_json(R"({"$":"int","hex":"0x1"})").root().as_int(); }, ErrorCode::WrongKind));
  EXPECT_TRUE(fails_with([&] { (void)open_json(R"({"$":"int","hex":"0x10000000000000000"})").root().as_int(); }, ErrorCode::WrongKind,
                         {"does not fit in 64 bits"}));
}

TEST(FileApi, InvalidSchemasNameThePath) {
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"a":[{"$":"frobnicate"}]})").root()["a"][0]; }, ErrorCode::SchemaInvalid,
                         {R"(at $["a"][0]: unknown tag "frobnicate")"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"a":{"$":"tensor","name":"nope"}})").root()["a"].as_tensor(); }, ErrorCode::TensorNotFound,
                         {R"(at $["a"])", "\"nope\""}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"tensor"})").root().as_tensor(); }, ErrorCode::SchemaInvalid, {"\"name\""}));
  // The names the writer reserves for a file's own tensors name no value (crafted case 49).
  const std::vector<std::byte> pad(8);
  EXPECT_TRUE(fails_with([&] { (void)open_json(R"({"$":"tensor","name":"__safestructures_padding__"})", {tensor_of("__safestructures_padding__", Dtype::U8, {8}, pad)}).root().as_tensor(); },
                         ErrorCode::SchemaInvalid, {"at $: tensor \"__safestructures_padding__\" is a recording's padding"}));
  EXPECT_TRUE(fails_with([&] { (void)open_json(R"({"$":"bytes","tensor":"__safestructures_schema__"})", {tensor_of("__safestructures_schema__", Dtype::U8, {8}, pad)}).root().as_bytes(); },
                         ErrorCode::SchemaInvalid, {"holds the spilled schema"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"b":{"$":"bytes","b64":"a"}})").root()["b"].as_bytes(); }, ErrorCode::SchemaInvalid,
                         {"base64"}));
  const std::vector<float> w{1.0f};
  EXPECT_TRUE(fails_with([&] { (void)open_json(R"({"$":"bytes","tensor":"w"})", {tensor_of("w", Dtype::F32, {1}, test::bytes_of(w))}).root().as_bytes(); },
                         ErrorCode::TensorMismatch, {"1-D U8"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"a":1,"$":2})").root().entries(); }, ErrorCode::SchemaInvalid, {"\"$\""}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"a":1,"$":2})").root()["a"]; }, ErrorCode::SchemaInvalid, {"\"$\""}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":1})").root(); }, ErrorCode::SchemaInvalid, {"\"$\""}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"a":1,"a":2})").root()["a"]; }, ErrorCode::DuplicateKey, {"twice"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"dict","items":[[1]]})").root().entries(); }, ErrorCode::SchemaInvalid, {"pair"}));
  // Pairs holding a string or int key twice: a load refuses them (crafted case 48), and so do entries() and lookups.
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"dict","items":[["a",1],["b",2],["a",3]]})").root().entries(); }, ErrorCode::SchemaInvalid,
                         {"at $: a mapping holds the key \"a\" twice"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"OrderedDict","items":[[1,1],[1,2]]})").root().entries(); }, ErrorCode::SchemaInvalid,
                         {"a mapping holds the key 1 twice"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"dict","items":[["a",1],["a",3]]})").root()["a"]; }, ErrorCode::SchemaInvalid,
                         {"a mapping holds the key \"a\" twice"}));
  EXPECT_EQ(open_json(R"({"$":"dict","items":[["1",1],[1,2],[1.5,3],[null,4]]})").root().entries().size(), 4u);
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"tuple"})").root().size(); }, ErrorCode::SchemaInvalid, {"\"items\""}));
  // A namedtuple's fields name its items, each once, as a load requires (crafted row 103).
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"n":{"$":"namedtuple","type":"p.P","fields":["x","x"],"items":[1,2]}})").root()["n"][0]; },
                         ErrorCode::SchemaInvalid, {R"(at $["n"]: a namedtuple's "fields" name "x" twice)"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"namedtuple","type":"p.P","fields":["x"],"items":[1,2]})").root().items(); },
                         ErrorCode::SchemaInvalid, {R"(as many "items" as "fields" (2 and 1))"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"namedtuple","type":"p.P","fields":[1,"y"],"items":[1,2]})").root().size(); },
                         ErrorCode::SchemaInvalid, {"must be strings"}));
  std::string many_fields, many_items;
  for (int k = 0; k < 40; ++k) {
    many_fields += (k ? ",\"f" : "\"f") + std::to_string(k % 39) + "\"";
    many_items += (k ? ",0" : "0");
  }
  EXPECT_TRUE(fails_with([&] { (void)open_json(R"({"$":"namedtuple","type":"p.P","fields":[)" + many_fields + "],\"items\":[" + many_items + "]}").root().size(); },
                         ErrorCode::SchemaInvalid, {R"("f0" twice)"}));
  EXPECT_EQ(open_json(R"({"$":"namedtuple","type":"p.P","fields":["x","y"],"items":[1,2]})").root().size(), 2u);
  // A deque holds at most its maxlen (crafted row 101).
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"q":{"$":"deque","maxlen":2,"items":[1,2,3]}})").root()["q"][0]; }, ErrorCode::SchemaInvalid,
                         {R"(at $["q"]: a deque of "maxlen" 2 holds 3 items, more than it keeps)"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"deque","maxlen":-1,"items":[]})").root().size(); }, ErrorCode::SchemaInvalid,
                         {"non-negative integer or null"}));
  EXPECT_EQ(open_json(R"({"$":"deque","maxlen":2,"items":[1,2]})").root().size(), 2u);
  EXPECT_EQ(open_json(R"({"$":"deque","maxlen":null,"items":[1,2,3]})").root().items().size(), 3u);
  // A set holds a string or int item once (crafted case 48); 1 and 1.0 only a load can tell.
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"s":{"$":"frozenset","items":["a",2,"a"]}})").root()["s"].items(); }, ErrorCode::SchemaInvalid,
                         {R"(at $["s"]: a frozenset holds the item "a" twice)"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"set","items":[7,7]})").root()[0]; }, ErrorCode::SchemaInvalid, {"a set holds the item 7 twice"}));
  EXPECT_EQ(open_json(R"({"$":"set","items":[1,1.0,"1"]})").root().size(), 3u);
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"float","v":"big"})").root().as_double(); }, ErrorCode::SchemaInvalid));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"float","v":"nan","bits":"0000000000000001"})").root().as_double(); },
                         ErrorCode::SchemaInvalid, {"NaN"}));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"str","cp":[1114112]})").root().as_string(); }, ErrorCode::SchemaInvalid));
  EXPECT_TRUE(fails_with([] { (void)open_json(R"({"$":"int","hex":"12"})").root().big_int_hex(); }, ErrorCode::SchemaInvalid));
}

TEST(FileApi, DeepPathsKeepTheirEnds) {
  std::string json;
  for (int k = 0; k < 30; ++k) json += "[";
  json += "\"x\"";
  for (int k = 0; k < 30; ++k) json += "]";
  TreeNode node = open_json(json).root();
  for (int k = 0; k < 30; ++k) node = node[0];
  const std::string path = node.path();
  EXPECT_EQ(path, "$[0][0][0][0][0][0][0][0][0][0][... 10 more ...][0][0][0][0][0][0][0][0][0][0]");
}

TEST(FileApi, LimitsAndVersions) {
  OpenOptions few;
  few.max_nodes = 3;
  EXPECT_TRUE(fails_with([&] { (void)File::from_bytes(structured_file("[1,2,3,4]"), few); }, ErrorCode::TooManyNodes));
  OpenOptions shallow;
  shallow.max_depth = 1;
  // The JSON may nest 3 levels per level of data, plus the envelope's (as for the Python loader).
  const std::string deep = std::string(12, '[') + std::string(12, ']');
  EXPECT_TRUE(fails_with([&] { (void)File::from_bytes(structured_file(deep), shallow); }, ErrorCode::NestingTooDeep));
  EXPECT_NO_THROW((void)File::from_bytes(structured_file(deep)));
  // A safestructures 1.0.0 file is named as such rather than read as a plain file.
  const std::vector<float> w{1.0f};
  const Metadata v1{{"_safestructures_schema_", "{}"}, {"_safestructures_schema_version_", "1.0.0"}};
  const WriteTensor t = tensor_of("0", Dtype::F32, {1}, test::bytes_of(w));
  EXPECT_TRUE(fails_with([&] { (void)File::from_bytes(write_bytes(std::span(&t, 1), &v1)); }, ErrorCode::SchemaVersion, {"1.0.0"}));
  const Metadata v3{{std::string(schema_metadata_key), R"({"format":"safestructures","version":3,"root":null})"}};
  EXPECT_TRUE(fails_with([&] { (void)File::from_bytes(write_bytes(std::span(&t, 1), &v3)); }, ErrorCode::SchemaVersion));
  EXPECT_TRUE(fails_with([&] { (void)File::from_bytes(test::to_bytes("short")); }, ErrorCode::FileTooSmall));
}

TEST(FileApi, PlainSafetensorsFileIsADictOfTensors) {
  const std::vector<float> a{1.0f, 2.0f};
  const std::vector<std::int32_t> b{7};
  const std::vector<WriteTensor> tensors{tensor_of("b", Dtype::I32, {}, test::bytes_of(b)), tensor_of("$", Dtype::F32, {2}, test::bytes_of(a))};
  const Metadata metadata{{"run", "r1"}};
  const File file = File::from_bytes(write_bytes(tensors, &metadata));
  EXPECT_FALSE(file.structured());
  EXPECT_EQ(file.metadata(), metadata);
  const TreeNode root = file.root();
  EXPECT_EQ(root.kind(), Kind::Dict);
  ASSERT_EQ(root.size(), 2u);
  EXPECT_EQ(root["b"].as_tensor().values<std::int32_t>()[0], 7);
  EXPECT_TRUE(root["b"].as_tensor().shape().empty());
  EXPECT_EQ(root["b"].as_tensor().framework(), "");
  // A tensor may be named "$": the root is a mapping like any other.
  EXPECT_EQ(root["$"].as_tensor().values<float>()[1], 2.0f);
  EXPECT_EQ(root.entries()[0].key.kind(), Kind::String);
  EXPECT_EQ(root["$"].path(), R"($["$"])");
}

TEST(FileApi, OpenFromDiskAndMetadata) {
  const auto dir = test::test_dir();
  const Metadata metadata{{"a", "1"}, {"b", "2"}};
  test::write_file_bytes(dir / "f.safetensors", structured_file(R"({"x":[1]})", {}, metadata));
  const File file = File::open(dir / "f.safetensors");
  EXPECT_EQ(file.metadata(), metadata);
  EXPECT_NE(file.header().find_metadata(schema_metadata_key), nullptr);
  EXPECT_EQ(file.root()["x"][0].as_int(), 1);
  EXPECT_TRUE(fails_with([&] { (void)File::open(dir / "missing.safetensors"); }, ErrorCode::Io, {"missing.safetensors"}));
  test::write_file_bytes(dir / "bad.safetensors", structured_file(R"([{"$":"list","#":1,"items":[]},{"$":"list","#":1,"items":[]}])"));
  EXPECT_TRUE(fails_with([&] { (void)File::open(dir / "bad.safetensors"); }, ErrorCode::SchemaInvalid, {"bad.safetensors", "defined twice"}));
}

}  // namespace
}  // namespace safestructures
