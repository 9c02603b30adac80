// A recording's header: its records' nodes and tensor entries as they are appended, the room and padding policy of
// its commits (docs/format.md section 9), and the state of a recording continued from its file.
#include "safestructures/recording_writer.hpp"

#include <simdjson.h>

#include <algorithm>
#include <new>
#include <numeric>

#include "safestructures/error.hpp"
#include "safestructures/format.hpp"
#include "safestructures/recording.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/schema_text.hpp"
#include "safestructures/seeded_hash.hpp"
#include "safestructures/structure.hpp"

namespace safestructures {
namespace {

constexpr std::uint64_t page = 4096;
// The most room a regrowth reserves for the data's sake (beyond twice the header): spaces cost disk, and memory never.
constexpr std::uint64_t data_room_cap = std::uint64_t{16} << 20;

// The smallest room of at least `room` bytes whose data starts on a page (8 + room a whole number of pages): a file
// system can then grow it by inserting pages before the data, and the data is page-aligned.
std::uint64_t page_room(std::uint64_t room) { return (room + 8 + page - 1) / page * page - 8; }

// Room for a header of `needed` bytes: twice that, or a 64th of `data_size` (the data a regrowth would move; 0 for a
// growth into the padding, which moves none) when more, up to 16 MiB (so that a run whose records are large regrows
// rarely), its data starting on a page, within the header limit.
std::uint64_t room_for(std::uint64_t needed, std::uint64_t data_size) {
  const std::uint64_t room = page_room(std::max({2 * needed, std::min(data_size / 64, data_room_cap), page}));
  return std::min(room, (default_max_header_size + 8) / page * page - 8);
}

void append_joined(std::pmr::string& out, const std::pmr::vector<std::string_view>& nodes) {
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    if (k) out += ',';
    out += nodes[k];
  }
}

// `utf8` as a JSON string, appended to the recording's text.
void append_quoted(std::pmr::string& out, std::string_view utf8) {
  std::string quoted;
  append_json_string(quoted, utf8);
  out += quoted;
}

// The schema document's text up to its root, as the header's string holds it.
const std::string& escaped_document_head() {
  static const std::string head = [] {
    std::string out;
    append_json_escaped(out, schema_envelope_head() + ",\"root\":");
    return out;
  }();
  return head;
}

// Where a recording's records lie in its schema document, by position (the tape's members and elements, which
// simdjson's On-Demand reads in the same order): the root is the document's member `root`; its lists of records are
// the root itself (a list), each member of the root (a dict), or the second element of each pair of the root's member
// `items` (a dict in pair form).
struct RecordLists {
  enum class Form { List, Members, Pairs } form = Form::List;
  std::size_t root = 0, items = 0;
};

bool is_json_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// Calls `record(s, text)` with the JSON text, exactly as written, of each record of list `s` of the schema document
// `document` (a recording's, its tape read and checked as `lists` says): simdjson's raw text of each element.
template <class Record>
void each_record_text(const std::string& document, const RecordLists& lists, std::uint32_t max_depth, Record&& record) {
  namespace od = simdjson::ondemand;
  // Read in place where the string has simdjson's padding after its text (as the header keeps a schema), else copied.
  simdjson::padded_string copy;
  simdjson::padded_string_view text(document.data(), document.size(), document.capacity());
  if (document.capacity() < document.size() + simdjson::SIMDJSON_PADDING) {
    copy = simdjson::padded_string(document);
    text = copy;
  }
  od::parser parser;
  if (parser.allocate(document.size(), max_depth)) throw std::bad_alloc();
  std::size_t s = 0;
  const auto each_element = [&](od::array list) {
    for (od::value element : list) {
      std::string_view json;
      const od::json_type type = element.type();
      switch (type) {
        case od::json_type::array: json = element.get_array().value().raw_json(); break;
        case od::json_type::object: json = element.get_object().value().raw_json(); break;
        default: json = element.raw_json_token();
      }
      while (!json.empty() && is_json_space(json.back())) json.remove_suffix(1);  // the spaces up to the next token
      record(s, json);
    }
    ++s;
  };
  od::document doc = parser.iterate(text);
  std::size_t m = 0;
  for (od::field member : doc.get_object()) {
    if (m++ != lists.root) continue;
    if (lists.form == RecordLists::Form::List) {
      each_element(member.value().get_array());
      return;
    }
    std::size_t n = 0;
    for (od::field root_member : member.value().get_object()) {
      if (lists.form == RecordLists::Form::Members) {
        each_element(root_member.value().get_array());
      } else if (n++ == lists.items) {
        for (od::value pair : root_member.value().get_array()) {
          std::size_t e = 0;
          for (od::value element : pair.get_array()) {
            if (e++ == 1) each_element(element.get_array());
          }
        }
        return;
      }
    }
    return;
  }
}

// The position of the member whose value is node `value` among the members of the object at `object`.
std::size_t member_position(const Tape& tape, std::size_t object, std::size_t value) {
  std::size_t position = 0;
  for (std::size_t k = object + 1; k + 1 != value; k = tape.next(k + 1)) ++position;
  return position;
}

}  // namespace

RecordingWriter::RecordingWriter(Metadata metadata, std::uint64_t header_room, std::uint64_t header_reserve)
    : metadata_(std::move(metadata)), reserve_(header_reserve / page * page) {
  check_user_metadata(metadata_);
  // The room asked for, less what makes its data start on a page.
  room_ = std::max(page, (header_room + 8) / page * page) - 8;
  padding_ = reserve_;
  plan_rewrite(header(padding_), room_, padding_);
}

RecordingWriter::RecordingWriter(const Header& header, const std::optional<Metadata>& metadata, std::uint64_t header_reserve,
                                 const std::string& name)
    : reserve_(header_reserve / page * page) {
  const auto invalid = [&](const std::string& what) { raise(ErrorCode::SchemaInvalid, name + ": " + what); };
  const std::string* version = header.find_metadata(recording_metadata_key);
  if (version == nullptr || *version != recording_layout_version) {
    invalid("not a recording (its metadata has no " + quote_name(recording_metadata_key) + " = " +
            quote_name(recording_layout_version) + "); mode='a' continues recordings only");
  }
  // A commit's journal records the room, and a reader trusts only a journal whose room is a multiple of 8 (as every
  // room this writer makes is): a recording with another room would be continued without crash safety.
  if (header.header_size % 8 != 0) {
    invalid("its header takes " + std::to_string(header.header_size) + " bytes, not a multiple of 8 as a recording's room is");
  }
  room_ = header.header_size;
  const std::string* schema = header.find_metadata(schema_metadata_key);
  Tape document;
  std::size_t root = 0;
  try {
    if (schema == nullptr) raise(ErrorCode::SchemaInvalid, "it has none");
    document = parse_schema_json(*schema);
    root = schema_root(document);
  } catch (const Error& e) {
    invalid(std::string("the recording's structure is not a schema document (") + e.what() + ")");
  }
  // The streams (the root's members, or its pairs) and their lists of records, as the tape shows them.
  RecordLists where{.root = member_position(document, 0, root)};
  std::vector<std::pair<Stream, std::size_t>> lists;  // (name, the list's node)
  const Node& top = document[root];
  const std::string_view tag = document.tag(root);
  const std::size_t items = top.kind == NodeKind::Object ? document.member(root, "items") : Tape::npos;
  if (top.kind == NodeKind::Array) {
    if (top.count) lists.emplace_back(std::nullopt, root);
  } else if (top.kind == NodeKind::Object && tag.empty()) {
    where.form = RecordLists::Form::Members;
    for (std::size_t k = root + 1; k < top.end; k = document.next(k + 1)) lists.emplace_back(std::string(document[k].text), k + 1);
  } else if (tag == traits(Kind::Dict).tag && items != Tape::npos && document[items].kind == NodeKind::Array) {
    where = {RecordLists::Form::Pairs, where.root, member_position(document, root, items)};
    for (std::size_t k = items + 1; k < document[items].end; k = document.next(k)) {
      if (document[k].kind != NodeKind::Array || document[k].count != 2 || document[k + 1].kind != NodeKind::String) {
        invalid("a stream of the recording is not a [name, records] pair");
      }
      lists.emplace_back(std::string(document[k + 1].text), k + 2);
    }
  } else {
    invalid("a recording's root is a list of records or a dict of lists");
  }
  std::vector<std::size_t> list_streams;  // each list's index in streams_
  for (const auto& [stream, list] : lists) {
    if (document[list].kind != NodeKind::Array) invalid("stream " + quote_name(stream.value_or("")) + " of the recording is not a list of records");
    // (Loads refuse a dict holding a key twice: continued, the two lists would merge into one stream.)
    if (stream && stream_index_.contains(*stream)) invalid("stream " + quote_name(*stream) + " appears twice");
    list_streams.push_back(static_cast<std::size_t>(&stream_nodes(stream) - streams_.data()));
  }
  // Each record's text as the file holds it, escaped again for the header's string.
  try {
    each_record_text(*schema, where, SchemaLimits{}.max_json_depth, [&](std::size_t s, std::string_view record) {
      scratch_.clear();
      append_json_escaped(scratch_, record);
      streams_[list_streams[s]].nodes.push_back(memory_->keep(scratch_));
      ++records_;
    });
  } catch (const simdjson::simdjson_error& e) {
    invalid(std::string("the recording's structure is not a schema document (") + e.what() + ")");
  }
  // The largest reference id of the records: the next record's ids come after it.
  for (const auto& [_, list] : lists) {
    for (std::size_t k = list + 1; k < document[list].end; ++k) {
      if (document[k].kind != NodeKind::Object || document.tag(k).empty()) continue;
      const std::size_t id = document.member(k, id_member);
      if (id != Tape::npos && document[id].kind == NodeKind::Int && document[id].integer > 0) {
        last_id_ = std::max<std::uint32_t>(last_id_, static_cast<std::uint32_t>(std::min<std::int64_t>(document[id].integer, UINT32_MAX)));
      }
    }
  }
  // The padding starts the data; the records' tensors follow it, in data order (a stable order for empty ones).
  std::vector<std::size_t> order;
  for (std::size_t k = 0; k < header.tensors.size(); ++k) {
    const TensorInfo& tensor = header.tensors[k];
    if (tensor.name != recording_padding_tensor) {
      order.push_back(k);
    } else if (tensor.begin != 0) {
      invalid("the recording's padding (" + quote_name(tensor.name) + ") does not start its data");
    } else {
      padding_ = tensor.nbytes();
    }
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return header.tensors[a].begin < header.tensors[b].begin; });
  for (const std::size_t k : order) {
    const TensorInfo& tensor = header.tensors[k];
    if (tensor.begin < padding_) invalid("tensor " + quote_name(tensor.name) + " of the recording lies in its padding");
    add_entry(tensor.name, tensor.dtype, tensor.shape, tensor.begin - padding_, tensor.end - padding_);
    take(memory_->keep(tensor.name));
    data_size_ = std::max(data_size_, tensor.end - padding_);
  }
  if (metadata) {
    check_user_metadata(*metadata);
    metadata_ = *metadata;
  } else {
    for (const auto& kv : header.metadata) {
      if (kv.first != schema_metadata_key && kv.first != recording_metadata_key) metadata_.push_back(kv);
    }
  }
}

std::size_t RecordingWriter::count(const Stream& stream) const {
  if (!stream) return streams_.size() == 1 && !streams_[0].name ? streams_[0].nodes.size() : 0;
  const auto it = stream_index_.find(*stream);
  return it == stream_index_.end() ? 0 : streams_[it->second].nodes.size();
}

bool RecordingWriter::name_taken(std::string_view name) const {
  const std::size_t mask = names_.size() - 1;
  for (std::size_t i = SeededStringHash{}(name) & mask;; i = (i + 1) & mask) {
    if (names_[i].data() == nullptr) return false;
    if (names_[i] == name) return true;
  }
}

void RecordingWriter::take(std::string_view name) {
  if (2 * (name_count_ + 1) > names_.size()) {
    std::pmr::vector<std::string_view> old(2 * names_.size(), memory_.get());
    old.swap(names_);
    name_count_ = 0;
    for (const std::string_view kept : old) {
      if (kept.data() != nullptr) take(kept);
    }
  }
  const std::size_t mask = names_.size() - 1;
  std::size_t i = SeededStringHash{}(name) & mask;
  while (names_[i].data() != nullptr) i = (i + 1) & mask;
  names_[i] = name;
  ++name_count_;
}

void RecordingWriter::check_stream(const Stream& stream) const {
  if (!streams_.empty() && stream.has_value() != streams_[0].name.has_value()) {
    raise(ErrorCode::InvalidArgument, "a recording holds plain records or named streams, not both");
  }
}

RecordingWriter::StreamNodes& RecordingWriter::stream_nodes(const Stream& stream) {
  if (!stream) {
    if (streams_.empty()) streams_.push_back({std::nullopt, std::pmr::vector<std::string_view>(memory_.get())});
    return streams_[0];
  }
  if (const auto it = stream_index_.find(*stream); it != stream_index_.end()) return streams_[it->second];
  const std::string_view name = memory_->keep(*stream);
  streams_.push_back({name, std::pmr::vector<std::string_view>(memory_.get())});
  try {
    stream_index_.emplace(name, streams_.size() - 1);
  } catch (...) {
    streams_.pop_back();
    throw;
  }
  return streams_.back();
}

std::string RecordingWriter::take_name(std::string base) {
  std::string name = first_free_name(std::move(base), [this](const std::string& candidate) { return name_taken(candidate); }, name_suffixes_);
  take(memory_->keep(name));
  return name;
}

void RecordingWriter::add_entry(const std::string& name, Dtype dtype, const std::vector<std::uint64_t>& shape, std::uint64_t begin,
                                std::uint64_t end) {
  std::string& head = scratch_;
  head.clear();
  append_json_string(head, name);
  head.append(":{\"dtype\":\"").append(dtype_name(dtype)).append("\",\"shape\":[");
  for (std::size_t k = 0; k < shape.size(); ++k) head.append(k ? "," : "").append(std::to_string(shape[k]));
  head.append("],\"data_offsets\":[");
  entries_.push_back({memory_->keep(head), begin, end});
}

void RecordingWriter::add(const Stream& stream, const WrittenTree& tree, const Layout& layout) {
  check_stream(stream);
  check_record(tree, layout);
  const std::string& head = escaped_document_head();
  StreamNodes& nodes = stream_nodes(stream);
  // STREAM.I.: the stream's name made safe as a tensor name's own parts are.
  std::string prefix;
  if (stream) {
    prefix = *stream;
    replace_control_characters(prefix);
    prefix += '.';
  }
  prefix += std::to_string(nodes.nodes.size()) + ".";
  // Named in data order, as the record's own header lists its tensors.
  std::vector<std::string> renamed(tree.tensors.size());
  std::uint64_t size = 0;
  for (const std::size_t k : layout.order) {
    renamed[k] = take_name(prefix + tree.tensors[k].name);
    add_entry(renamed[k], tree.tensors[k].dtype, tree.tensors[k].shape, data_size_ + layout.offsets[k],
              data_size_ + layout.offsets[k] + layout.sizes[k]);
    size = std::max(size, layout.offsets[k] + layout.sizes[k]);
  }
  // The record's node: its document's root, each tensor name written where the walk noted it, renamed.
  const std::string_view text = tree.escaped_document;
  std::string& node = scratch_;
  node.clear();
  std::size_t from = head.size();
  // A few names are found faster by comparing them than by hashing; a record of many tensors gets an index.
  std::unordered_map<std::string_view, std::size_t, SeededStringHash> index;
  if (tree.tensors.size() > Header::small_header_tensors) {
    for (std::size_t k = 0; k < tree.tensors.size(); ++k) index.emplace(tree.tensors[k].name, k);
  }
  for (const WrittenTree::NameSpot& spot : tree.name_spots) {
    std::size_t k = 0;
    if (index.empty()) {
      while (k < tree.tensors.size() && tree.tensors[k].name != spot.name) ++k;
    } else if (const auto it = index.find(spot.name); it != index.end()) {
      k = it->second;
    } else {
      k = tree.tensors.size();
    }
    if (k == tree.tensors.size()) continue;
    node.append(text.substr(from, spot.at - from));
    append_schema_string(node, renamed[k]);
    from = spot.at + spot.size;
  }
  node.append(text.substr(from, text.size() - 1 - from));  // the envelope's closing brace left out
  nodes.nodes.push_back(memory_->keep(node));
  ++records_;
  last_id_ = std::max(last_id_, tree.last_id);
  data_size_ += size;
}

void RecordingWriter::check_record(const WrittenTree& tree, const Layout& layout) {
  if (tree.escaped_document.size() + layout.header.size() > default_max_header_size) {
    raise(ErrorCode::InvalidArgument, "its structure alone is over the header limit");
  }
}

std::string_view RecordingWriter::header(std::uint64_t padding) {
  // Rendered into the same buffer at each commit: a header of megabytes built anew each time, a little larger than
  // the last, left the allocator a hole it could not reuse at every commit (the process grew by the header's size
  // each flush, though nothing was held).
  std::pmr::string& out = header_;
  out.clear();
  out += '{';
  append_quoted(out, metadata_key);
  out += ":{";
  // The recording's key first, where a reader finds it in the header's first page, torn or not; then the others sorted.
  append_quoted(out, recording_metadata_key);
  out += ':';
  append_quoted(out, recording_layout_version);
  std::vector<const std::pair<std::string, std::string>*> sorted;
  for (const auto& kv : metadata_) sorted.push_back(&kv);
  const std::pair<std::string, std::string> schema{std::string(schema_metadata_key), {}};
  sorted.push_back(&schema);
  std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
  for (const auto* kv : sorted) {
    out += ',';
    append_quoted(out, kv->first);
    out += ':';
    if (kv != &schema) {
      append_quoted(out, kv->second);
      continue;
    }
    out += '"';
    out += escaped_document_head();
    if (streams_.empty() || !streams_[0].name) {
      out += '[';
      if (!streams_.empty()) append_joined(out, streams_[0].nodes);
      out += ']';
    } else if (stream_index_.contains(tag_member)) {  // a stream named "$": the root dict in pair form
      std::string pairs_head;
      append_json_escaped(pairs_head, std::string("{\"").append(tag_member).append("\":\"").append(traits(Kind::Dict).tag).append("\",\"items\":["));
      out += pairs_head;
      for (std::size_t s = 0; s < streams_.size(); ++s) {
        out += s ? ",[" : "[";
        append_schema_string(out, *streams_[s].name);
        out.append(",[");
        append_joined(out, streams_[s].nodes);
        out.append("]]");
      }
      out += "]}";
    } else {
      out += '{';
      for (std::size_t s = 0; s < streams_.size(); ++s) {
        if (s) out += ',';
        append_schema_string(out, *streams_[s].name);
        out.append(":[");
        append_joined(out, streams_[s].nodes);
        out += ']';
      }
      out += '}';
    }
    out += "}\"";
  }
  out += '}';
  if (padding) {
    out += ',';
    append_quoted(out, recording_padding_tensor);
    const std::string size = std::to_string(padding);
    out.append(":{\"dtype\":\"U8\",\"shape\":[").append(size).append("],\"data_offsets\":[0,").append(size).append("]}");
  }
  if (padding != rendered_for_) {
    rendered_.clear();
    rendered_count_ = 0;
    rendered_for_ = padding;
  }
  for (; rendered_count_ < entries_.size(); ++rendered_count_) {
    const Entry& e = entries_[rendered_count_];
    rendered_.append(",").append(e.head).append(std::to_string(e.begin + padding)).append(",").append(std::to_string(e.end + padding)).append("]}");
  }
  out += rendered_;
  out += '}';
  return out;
}

bool RecordingWriter::commit(int fd, bool fsync) {
  const std::string_view text = header(padding_);
  if (text.size() <= room_) {
    commit_recording_header(fd, text, room_, padding_ + data_size_, fsync);
    return true;
  }
  const std::uint64_t needed = text.size();
  if (needed > default_max_header_size) {
    raise(ErrorCode::InvalidArgument, "the recording's header would take " + std::to_string(needed) + " bytes, over the limit of " +
                                          std::to_string(default_max_header_size) + ": start another recording");
  }
  // Into the padding, where it is long enough: the header takes it over, the records stay where they are (a shorter
  // padding never lengthens the header: its offsets only lose digits).
  const std::uint64_t grown = std::min(room_for(needed, 0), room_ + padding_);
  if (grown >= needed) {
    const std::uint64_t padding = room_ + padding_ - grown;
    commit_recording_header(fd, header(padding), grown, padding + data_size_, fsync);
    room_ = grown;
    padding_ = padding;
    return true;
  }
  // Else the records move, behind a new room and a new padding: pages inserted before them where the file system can
  // (ext4, XFS); else the file written anew (by the caller).
  const std::uint64_t new_room = room_for(needed, data_size_), new_padding = std::max(reserve_, padding_);
  const std::string_view grown_text = header(new_padding);
  if (grow_recording_header(fd, grown_text, room_, new_room, padding_ + data_size_, new_padding + data_size_, fsync)) {
    room_ = new_room;
    padding_ = new_padding;
    return true;
  }
  plan_rewrite(grown_text, new_room, new_padding);
  return false;
}

void RecordingWriter::plan_rewrite(std::string_view text, std::uint64_t room, std::uint64_t padding) {
  rewrite_ = {std::string(text), room, padding, 8 + room_ + padding_, data_size_};
}

void RecordingWriter::rewritten() {
  room_ = rewrite_.room;
  padding_ = rewrite_.padding;
  rewrite_ = {};
}

bool RecordingWriter::drop_padding() {
  if (padding_ == 0 || data_size_ > padding_) return false;
  const std::string_view text = header(0);
  plan_rewrite(text, room_for(text.size(), 0), 0);
  return true;
}

}  // namespace safestructures
