#pragma once

// The object model of the restricted unpickler and of the pickler: the small part of Python's
// object world that torch files use (None, bool, int, float, str, bytes, list, tuple, dict,
// OrderedDict, tensors and storages), plus two inert kinds for everything else: a Global names
// a class or function without resolving it, and an Opaque stands for an object built from a
// global that the reader chose to skip. Nothing here ever executes code from a file.
//
// Values are shared (a pickle may reference one object from several places), so they are
// handled through ValuePtr. Containers become read-only ("sealed") once they are placed inside
// another container; this keeps the graph acyclic and its depth known.

#include <ATen/core/Tensor.h>

#include <QString>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace studio::py {

class Value;
using ValuePtr = std::shared_ptr<Value>;

enum class Kind
{
    None,
    Bool,
    Int,
    Float,
    String,
    Bytes,
    List,
    Tuple,
    Dict,
    Tensor,
    Storage,
    Global,
    Opaque,
};

struct DictEntry
{
    ValuePtr key;
    ValuePtr value;
};

class Value
{
public:
    static ValuePtr none();
    static ValuePtr boolean(bool value);
    static ValuePtr integer(int64_t value);
    static ValuePtr real(double value);
    static ValuePtr string(const QString& value);
    static ValuePtr bytes(const QByteArray& value);
    static ValuePtr list(std::vector<ValuePtr> items = {});
    static ValuePtr tuple(std::vector<ValuePtr> items = {});
    static ValuePtr dict();
    static ValuePtr orderedDict();
    static ValuePtr tensor(const at::Tensor& tensor);
    static ValuePtr storage(const at::Tensor& flatData);
    static ValuePtr global(const QString& module, const QString& name);
    static ValuePtr opaque(const QString& module, const QString& name);

    Kind kind() const { return m_kind; }
    bool is(Kind kind) const { return m_kind == kind; }
    bool isNone() const { return m_kind == Kind::None; }
    // "int", "str", "OrderedDict", "torch._utils._rebuild_tensor_v2", ...: for error messages.
    QString typeName() const;

    bool toBool() const;
    int64_t toInt() const;
    double toDouble() const; // accepts int and float, as Python arithmetic would
    const QString& toStr() const;
    const QByteArray& toBytes() const;
    const at::Tensor& toTensor() const; // a Tensor, or the flat data of a Storage

    // Lists and tuples.
    const std::vector<ValuePtr>& items() const;
    void append(const ValuePtr& item);

    // Dicts and OrderedDicts keep insertion order; setting an existing key replaces its value.
    bool isOrderedDict() const { return m_orderedDict; }
    const std::vector<DictEntry>& entries() const;
    void set(const ValuePtr& key, const ValuePtr& value);
    void set(const QString& key, const ValuePtr& value) { set(string(key), value); }
    ValuePtr get(const QString& key) const;
    ValuePtr get(int64_t key) const;
    bool contains(const QString& key) const { return get(key) != nullptr; }

    // Object state set by pickle's BUILD, e.g. the `_metadata` of a PyTorch state dict.
    const ValuePtr& attributes() const { return m_attributes; }
    void setAttributes(const ValuePtr& state);

    // Globals and opaque objects.
    const QString& module() const { return m_module; }
    const QString& name() const { return m_name; }
    bool isGlobal(const char* module, const char* name) const;

    // Depth of nesting: 1 for scalars, 1 + deepest child for containers.
    int depth() const { return m_depth; }
    bool isSealed() const { return m_sealed; }
    void seal() { m_sealed = true; }

private:
    explicit Value(Kind kind) : m_kind(kind) {}

    void requireKind(Kind kind, const char* what) const;
    void requireMutable() const;
    void adoptChild(const ValuePtr& child);
    std::vector<ValuePtr>& mutableItems();

    Kind m_kind;
    bool m_orderedDict = false;
    bool m_sealed = false;
    int m_depth = 1;
    bool m_bool = false;
    int64_t m_int = 0;
    double m_float = 0.0;
    QString m_string;
    QByteArray m_bytes;
    std::vector<ValuePtr> m_items;
    std::vector<DictEntry> m_entries;
    std::unordered_map<std::string, size_t> m_index; // dict key fingerprint -> entry position
    at::Tensor m_tensor;
    ValuePtr m_attributes;
    QString m_module;
    QString m_name;
};

// Deepest nesting a reader accepts; torch files stay below 10.
constexpr int kMaxNestingDepth = 100;

// Convenience builders for writers.
ValuePtr makeStringList(const std::vector<QString>& items);
ValuePtr makeFloatList(const std::vector<double>& items);

} // namespace studio::py
