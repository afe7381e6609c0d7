// The pickle machine behind read_verification_bin; see verification_bin.h for the
// opcodes it takes and why. Opcode values are those of CPython's pickle module.
#include "engine/data/verification_bin.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <unordered_map>

#include "engine/common.h"

namespace coco {
namespace {

struct Value;
using Ref = std::shared_ptr<Value>;

struct Value {
  enum Kind { kMark, kBytes, kText, kBool, kList, kTuple, kCodecsEncode } kind;
  size_t at = 0;  // byte offset of the opcode that made it
  std::string s;  // kBytes: the bytes; kText: UTF-8
  bool b = false;
  std::vector<Ref> items;  // kList, kTuple
};

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::kMark: return "a MARK";
    case Value::kBytes: return "bytes";
    case Value::kText: return "a text string";
    case Value::kBool: return "a bool";
    case Value::kList: return "a list";
    case Value::kTuple: return "a tuple";
    case Value::kCodecsEncode: return "the function _codecs.encode";
  }
  return "?";
}

Ref make(Value::Kind kind, size_t at) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  v->at = at;
  return v;
}

// Latin-1 text (code points below 256) in UTF-8 -> the bytes Python 3's protocol 2
// stood for with _codecs.encode(text, 'latin1').
bool latin1_from_utf8(const std::string& text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else if ((c == 0xC2 || c == 0xC3) && i + 1 < text.size() &&
               (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80) {
      out->push_back(static_cast<char>(((c & 0x03) << 6) | (static_cast<unsigned char>(text[++i]) & 0x3F)));
    } else {
      return false;
    }
  }
  return true;
}

class PickleMachine {
 public:
  PickleMachine(const std::string& in, const std::string& name) : in_(in), name_(name) {}

  Ref run() {
    while (true) {
      if (pos_ >= in_.size()) fail(pos_, "the pickle ends before its STOP opcode (truncated file?)");
      const size_t at = pos_;
      const auto op = static_cast<unsigned char>(in_[pos_++]);
      if (op == '.') {  // STOP
        if (stack_.size() != 1) fail(at, "STOP with " + std::to_string(stack_.size()) + " values on the stack, not 1");
        return stack_.back();
      }
      step(op, at);
    }
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& what) const { COCO_THROW(name_, ": byte ", at, ": ", what); }

  uint64_t read_le(size_t n) {
    if (in_.size() - pos_ < n) fail(pos_, "the file ends inside an opcode's argument (truncated file?)");
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in_[pos_ + i])) << (8 * i);
    pos_ += n;
    return v;
  }

  std::string read_span(uint64_t n, size_t at) {
    if (in_.size() - pos_ < n)
      fail(at, "a string of " + std::to_string(n) + " bytes runs past the end of the file (truncated file?)");
    std::string s = in_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

  std::string read_line(size_t at) {
    const size_t end = in_.find('\n', pos_);
    if (end == std::string::npos || end - pos_ > 256) fail(at, "an opcode's text argument has no end of line");
    std::string s = in_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  void push_string(Value::Kind kind, uint64_t n, size_t at) {
    Ref v = make(kind, at);
    v->s = read_span(n, at);
    stack_.push_back(v);
  }

  Ref pop(size_t at) {
    if (stack_.empty() || stack_.back()->kind == Value::kMark) fail(at, "the opcode needs a value on the stack");
    Ref v = stack_.back();
    stack_.pop_back();
    return v;
  }

  Ref& top(size_t at) {
    if (stack_.empty()) fail(at, "the opcode needs a value on the stack");
    return stack_.back();
  }

  std::vector<Ref> pop_to_mark(size_t at) {
    size_t k = stack_.size();
    while (k > 0 && stack_[k - 1]->kind != Value::kMark) --k;
    if (k == 0) fail(at, "the opcode needs a MARK on the stack");
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(k), stack_.end());
    stack_.resize(k - 1);
    return items;
  }

  void tuple_of(size_t n, size_t at) {
    if (stack_.size() < n) fail(at, "the tuple opcode needs " + std::to_string(n) + " values on the stack");
    Ref t = make(Value::kTuple, at);
    t->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    for (const auto& v : t->items)
      if (v->kind == Value::kMark) fail(at, "the tuple opcode found a MARK among its values");
    stack_.resize(stack_.size() - n);
    stack_.push_back(t);
  }

  void append(std::vector<Ref> items, size_t at) {
    Ref& list = top(at);
    if (list->kind != Value::kList) fail(at, std::string("APPEND(S) onto ") + kind_name(list->kind) + ", not a list");
    for (auto& v : items) list->items.push_back(std::move(v));
  }

  void check_global(const std::string& module, const std::string& name, size_t at) {
    if (module == "_codecs" && name == "encode") {
      stack_.push_back(make(Value::kCodecsEncode, at));
      return;
    }
    fail(at, "the pickle refers to " + module + "." + name + "; a verification .bin holds only bytes, lists, bools "
             "and tuples (and _codecs.encode for Python 3's protocol 2)");
  }

  // _codecs.encode(text, 'latin1'): Python 3's protocol-2 spelling of bytes.
  void reduce(size_t at) {
    Ref args = pop(at), fn = pop(at);
    if (fn->kind != Value::kCodecsEncode) fail(at, std::string("REDUCE calls ") + kind_name(fn->kind));
    if (args->kind != Value::kTuple || args->items.size() != 2 || args->items[0]->kind != Value::kText ||
        args->items[1]->kind != Value::kText || args->items[1]->s != "latin1")
      fail(at, "_codecs.encode is called with other arguments than (text, 'latin1')");
    Ref b = make(Value::kBytes, args->items[0]->at);
    if (!latin1_from_utf8(args->items[0]->s, &b->s)) fail(args->items[0]->at, "text that is not Latin-1 in UTF-8");
    stack_.push_back(b);
  }

  void memo_put(uint64_t index, size_t at) { memo_[index] = top(at); }

  // Only leaves may be fetched again: a list or tuple fetched from the memo could be
  // appended into itself, and these files never share one.
  void memo_get(uint64_t index, size_t at) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) fail(at, "a memo get of entry " + std::to_string(index) + ", which was never put");
    const Value::Kind k = it->second->kind;
    if (k == Value::kList || k == Value::kTuple || k == Value::kMark)
      fail(at, std::string("a memo get of ") + kind_name(k) + " (a shared or recursive structure)");
    stack_.push_back(it->second);
  }

  void step(unsigned char op, size_t at) {
    switch (op) {
      case 0x80: {  // PROTO
        const uint64_t v = read_le(1);
        if (v > 5) fail(at, "pickle protocol " + std::to_string(v) + " (this reader knows 1 to 5)");
        return;
      }
      case 0x95: {  // FRAME: the frame's bytes follow inline
        const uint64_t n = read_le(8);
        if (in_.size() - pos_ < n) fail(at, "a frame of " + std::to_string(n) + " bytes runs past the end of the file");
        return;
      }
      case '(': stack_.push_back(make(Value::kMark, at)); return;
      case ']': stack_.push_back(make(Value::kList, at)); return;
      case ')': stack_.push_back(make(Value::kTuple, at)); return;
      case 'a': { Ref v = pop(at); append({v}, at); return; }
      case 'e': append(pop_to_mark(at), at); return;
      case 't': {
        Ref t = make(Value::kTuple, at);
        t->items = pop_to_mark(at);
        stack_.push_back(t);
        return;
      }
      case 0x85: tuple_of(1, at); return;
      case 0x86: tuple_of(2, at); return;
      case 0x87: tuple_of(3, at); return;
      case 'U': push_string(Value::kBytes, read_le(1), at); return;  // SHORT_BINSTRING (Python 2 str)
      case 'T': {                                                     // BINSTRING: a signed length
        const uint64_t n = read_le(4);
        if (n >= (1ull << 31)) fail(at, "BINSTRING with a negative length");
        push_string(Value::kBytes, n, at);
        return;
      }
      case 'C': push_string(Value::kBytes, read_le(1), at); return;  // SHORT_BINBYTES
      case 'B': push_string(Value::kBytes, read_le(4), at); return;  // BINBYTES
      case 0x8e: push_string(Value::kBytes, read_le(8), at); return;  // BINBYTES8
      case 0x8c: push_string(Value::kText, read_le(1), at); return;  // SHORT_BINUNICODE
      case 'X': push_string(Value::kText, read_le(4), at); return;   // BINUNICODE
      case 0x8d: push_string(Value::kText, read_le(8), at); return;  // BINUNICODE8
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        Ref v = make(Value::kBool, at);
        v->b = op == 0x88;
        stack_.push_back(v);
        return;
      }
      case 'I': {  // INT: protocol 1 spells True and False as 01 and 00
        const std::string text = read_line(at);
        if (text != "01" && text != "00") fail(at, "an integer (" + text + ") where a bool was expected");
        Ref v = make(Value::kBool, at);
        v->b = text == "01";
        stack_.push_back(v);
        return;
      }
      case 'c': {  // GLOBAL module\nname\n
        const std::string module = read_line(at);
        check_global(module, read_line(at), at);
        return;
      }
      case 0x93: {  // STACK_GLOBAL
        Ref name = pop(at), module = pop(at);
        if (name->kind != Value::kText || module->kind != Value::kText) fail(at, "STACK_GLOBAL without two names");
        check_global(module->s, name->s, at);
        return;
      }
      case 'R': reduce(at); return;
      case 'q': memo_put(read_le(1), at); return;  // BINPUT
      case 'r': memo_put(read_le(4), at); return;  // LONG_BINPUT
      case 0x94: memo_put(memo_.size(), at); return;  // MEMOIZE
      case 'h': memo_get(read_le(1), at); return;  // BINGET
      case 'j': memo_get(read_le(4), at); return;  // LONG_BINGET
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(at, std::string("opcode ") + hex + " is not one a verification .bin uses");
      }
    }
  }

  const std::string& in_;
  std::string name_;
  size_t pos_ = 0;
  std::vector<Ref> stack_;
  std::unordered_map<uint64_t, Ref> memo_;
};

}  // namespace

VerificationBin parse_verification_bin(const std::string& bytes, const std::string& name) {
  const Ref root = PickleMachine(bytes, name).run();
  auto fail = [&](size_t at, const std::string& what) { COCO_THROW(name, ": byte ", at, ": ", what); };
  if (root->kind != Value::kTuple || root->items.size() != 2)
    fail(root->at, std::string("the pickle holds ") + kind_name(root->kind) +
                       (root->kind == Value::kTuple ? " of " + std::to_string(root->items.size()) : std::string()) +
                       ", not the tuple (bins, issame_list)");
  const Value& bins = *root->items[0];
  const Value& same = *root->items[1];
  if (bins.kind != Value::kList) fail(bins.at, std::string("bins is ") + kind_name(bins.kind) + ", not a list");
  if (same.kind != Value::kList) fail(same.at, std::string("issame_list is ") + kind_name(same.kind) + ", not a list");
  VerificationBin out;
  out.images.reserve(bins.items.size());
  for (size_t i = 0; i < bins.items.size(); ++i) {
    const Value& v = *bins.items[i];
    if (v.kind != Value::kBytes) fail(v.at, "bins[" + std::to_string(i) + "] is " + kind_name(v.kind) + ", not bytes");
    if (v.s.empty()) fail(v.at, "bins[" + std::to_string(i) + "] is empty, not an encoded image");
    out.images.push_back(v.s);
  }
  for (size_t i = 0; i < same.items.size(); ++i) {
    const Value& v = *same.items[i];
    if (v.kind != Value::kBool)
      fail(v.at, "issame_list[" + std::to_string(i) + "] is " + kind_name(v.kind) + ", not a bool");
    out.issame.push_back(v.b);
  }
  if (out.issame.empty()) fail(same.at, "issame_list is empty: the set holds no pairs");
  if (out.images.size() != 2 * out.issame.size())
    fail(bins.at, "bins holds " + std::to_string(out.images.size()) + " images for " +
                      std::to_string(out.issame.size()) + " pairs (it must hold two per pair)");
  return out;
}

VerificationBin read_verification_bin(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) COCO_THROW(path, ": cannot open the verification set");
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) COCO_THROW(path, ": read error");
  return parse_verification_bin(bytes, path);
}

}  // namespace coco
