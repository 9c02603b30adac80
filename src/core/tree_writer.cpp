// The one schema writer: node forms, references, tensor names, and the finished file.
#include "safestructures/tree_writer.hpp"

#include <algorithm>

#include "safestructures/codec.hpp"
#include "safestructures/path_text.hpp"
#include "safestructures/stack.hpp"

namespace safestructures {

// The memo of objects written, keyed by address: open addressing with linear probing in one array. The
// std::unordered_map it replaced allocated a node per container and was a tenth of a 100,000-node save.
class TreeWriter::MemoTable {
 public:
  struct Memo {
    std::size_t written;  // its index in written_
    bool in_progress;
    bool immutable;
  };

  MemoTable() {
    std::size_t capacity = 64;
    // Sized for what the last save on this thread needed, so that saving similar data again does not regrow it; capped
    // (768 KiB), so that a small save after a huge one does not clear a huge table.
    while (capacity < 2 * last_size_ && capacity < (std::size_t{1} << 15)) capacity *= 2;
    slots_.resize(capacity);
  }
  ~MemoTable() {
    if (size_) last_size_ = size_;
  }

  Memo* find(const void* key) {
    for (std::size_t i = hash(key) & mask();; i = (i + 1) & mask()) {
      if (slots_[i].key == key) return &slots_[i].memo;
      if (slots_[i].key == nullptr) {
        // Where an insertion of `key` would go: a container found new is inserted next, without a second probe.
        missed_key_ = key;
        missed_slot_ = i;
        return nullptr;
      }
    }
  }
  // Inserts `memo` under `key` unless the key is there already (as std::unordered_map::emplace does).
  void emplace(const void* key, Memo memo) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    if (key == missed_key_ && missed_slot_ < slots_.size() && slots_[missed_slot_].key == nullptr) {
      slots_[missed_slot_] = {key, memo};
      ++size_;
      missed_key_ = nullptr;
      return;
    }
    for (std::size_t i = hash(key) & mask();; i = (i + 1) & mask()) {
      if (slots_[i].key == key) return;
      if (slots_[i].key == nullptr) {
        slots_[i] = {key, memo};
        ++size_;
        return;
      }
    }
  }

 private:
  struct Slot {
    const void* key = nullptr;
    Memo memo{};
  };
  static std::size_t hash(const void* key) {
    // Objects are 16-byte aligned: the low bits carry nothing. Nearby objects keep nearby slots (a walk meets objects
    // in about the order they were made, so its probes stay in cache, as pickle's memo does), and each megabyte of
    // addresses lands in the table at another offset, so that objects a multiple of the table apart do not collide.
    const auto x = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(key));
    return static_cast<std::size_t>((x >> 4) ^ ((x >> 20) * 0x9e3779b97f4a7c15ULL >> 40));
  }
  std::size_t mask() const { return slots_.size() - 1; }
  void grow() {
    missed_key_ = nullptr;  // its slot was in the old array
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    size_ = 0;
    for (const Slot& slot : old) {
      if (slot.key != nullptr) emplace(slot.key, slot.memo);
    }
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
  // The key the last find missed, and the empty slot that ended its probe.
  const void* missed_key_ = nullptr;
  std::size_t missed_slot_ = 0;
  static thread_local std::size_t last_size_;
};

thread_local std::size_t TreeWriter::MemoTable::last_size_ = 0;

TreeWriter::TreeWriter(std::uint32_t max_depth, const NodeText& text)
    : text_(text), max_depth_(max_depth), memo_(std::make_unique<MemoTable>()) {
  // Names a generated path must never take.
  used_names_.insert(std::string(metadata_key));
  used_names_.insert(std::string(schema_spill_tensor));
  used_names_.insert(std::string(recording_padding_tensor));
}

TreeWriter::~TreeWriter() = default;

std::string TreeWriter::path_text() const {
  return render_path(path_.size(), [this](std::string& out, std::size_t k) {
    const PathPart& part = path_[k];
    switch (part.type) {
      case PathPart::Index: append_index_part(out, static_cast<std::int64_t>(part.index)); break;
      case PathPart::Field: append_field_part(out, part.field); break;
      case PathPart::Key: append_shown_key_part(out, text_.key_shown(part.key)); break;
    }
  });
}

std::string TreeWriter::free_name() const {
  std::string name;
  for (const PathPart& part : path_) {
    if (!name.empty()) name += '.';
    switch (part.type) {
      case PathPart::Index: name += std::to_string(part.index); break;
      case PathPart::Field: name += part.field; break;
      case PathPart::Key: name += text_.key_name(part.key); break;
    }
  }
  if (name.empty()) name = "root";
  replace_control_characters(name);
  return first_free_name(std::move(name), [this](const std::string& candidate) { return used_names_.contains(candidate); }, name_suffixes_);
}

void replace_control_characters(std::string& name) {
  for (char& c : name) {
    if (static_cast<unsigned char>(c) < 0x20) c = '_';
  }
}

void TreeWriter::big_int(std::string hex) {
  // Hexadecimal is exact and, unlike decimal, not capped by Python's int/str conversion limit.
  const std::size_t at = begin_tagged(Kind::BigInt);
  out.key("hex");
  out.string(hex);
  out.end_container(at);
}

void TreeWriter::code_points(std::span<const std::uint32_t> points) {
  // Lone surrogates have no UTF-8 form (and JSON readers refuse them escaped): the code points are kept instead.
  const std::size_t at = begin_tagged(Kind::String);
  out.key("cp");
  const std::size_t list = out.begin_array();
  for (std::uint32_t cp : points) out.integer(cp);
  out.end_container(list);
  out.end_container(at);
}

bool TreeWriter::bytes(const void* obj, Kind kind, std::span<const std::byte> data, bool is_mutable) {
  // A bytearray's identity matters whatever its size; small bytes are cheaper inline than as references.
  const bool inline_ = data.size() <= inline_bytes_limit;
  const bool shared = is_mutable || !inline_;
  if (shared && seen(obj)) return false;
  const std::size_t at = begin_tagged(kind);
  if (shared) remember(obj, at, false, false);
  if (inline_) {
    out.key(field::base64);
    out.string(codec::base64_encode(data));
  } else {
    std::string name = free_name();
    used_names_.insert(name);
    out.key(field::tensor);
    tensor_name(name);
    tensors.push_back(WriteTensor{std::move(name), Dtype::U8, {data.size()}, data.data(), {}});
  }
  out.end_container(at);
  return !inline_;
}

bool TreeWriter::seen(const void* obj) {
  MemoTable::Memo* m = memo_->find(obj);
  if (m == nullptr) return false;
  if (m->in_progress && m->immutable) {
    throw UnsupportedData("cannot save the reference cycle at " + path_text() + ": it runs through an immutable " +
                          text_.type_name(obj) + ", which cannot be rebuilt before its own items");
  }
  Written& target = written_[m->written];
  if (target.id == 0) target.id = next_id_++;
  out.reference(target.id);
  return true;
}

void TreeWriter::enter(const void* obj, std::size_t at, bool immutable) {
  if (++depth_ > max_depth_) {
    raise(ErrorCode::NestingTooDeep, "the data nests deeper than the limit of " + std::to_string(max_depth_) + " levels at " + path_text());
  }
  if (stack_nearly_exhausted()) {
    raise(ErrorCode::NestingTooDeep,
          "the data nests deeper (" + std::to_string(depth_) + " levels at " + path_text() + ") than this thread's stack can walk");
  }
  if (obj != nullptr) remember(obj, at, true, immutable);
}

void TreeWriter::leave(const void* obj, std::size_t at) {
  out.end_container(at);
  --depth_;
  if (obj != nullptr) {
    MemoTable::Memo* m = memo_->find(obj);
    m->in_progress = false;
    written_[m->written].end = out.closed_end();
  }
}

void TreeWriter::remember(const void* obj, std::size_t at, bool in_progress, bool immutable) {
  memo_->emplace(obj, {written_.size(), in_progress, immutable});
  written_.push_back({at, 0, 0});
}

std::size_t TreeWriter::begin_items() {
  out.key("items");
  return out.begin_array();
}

std::size_t TreeWriter::begin_tensor(const void* obj, std::string name) {
  const std::size_t at = begin_tagged(Kind::Tensor);
  remember(obj, at, false, false);
  if (!name.empty()) {
    used_names_.insert(name);
    out.key(field::name);
    tensor_name(name);
  }
  return at;
}

void TreeWriter::write_as_record(std::uint32_t last_id) {
  record_ = true;
  next_id_ = last_id + 1;
  out.write_python_floats();
}

void TreeWriter::tensor_name(std::string_view name) {
  const std::size_t at = out.size();
  out.string(name);
  if (record_) name_spots_.push_back({at, out.size() - 1 - at, std::string(name)});
}

WrittenTree TreeWriter::finish() && {
  for (const Written& w : written_) {
    if (w.id != 0) out.refer(w.start, w.end, w.id);
  }
  std::vector<std::size_t> positions(name_spots_.size());
  for (std::size_t k = 0; k < positions.size(); ++k) positions[k] = name_spots_[k].at;
  WrittenTree tree{std::move(out).finish(positions), std::move(tensors), std::move(name_spots_), next_id_ - 1};
  for (std::size_t k = 0; k < positions.size(); ++k) tree.name_spots[k].at = positions[k];
  return tree;
}

std::string WrittenTree::document() const { return unescape_schema(escaped_document); }

StructuredLayout WrittenTree::plan(const Metadata& metadata, std::uint64_t max_header_size, bool checksums) && {
  StructuredLayout plan =
      plan_structured(std::move(tensors), metadata, EscapedSchema{std::move(escaped_document)}, max_header_size, checksums);
  // The header holds the document now: its text goes back to the writer of the next one (the metadata keeps its key).
  if (plan.spilled_schema.empty()) SchemaText::recycle(std::move(plan.metadata.back().second));
  return plan;
}

}  // namespace safestructures
