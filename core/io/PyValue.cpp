#include "core/io/PyValue.h"

#include "core/Error.h"

#include <algorithm>

namespace studio::py {

namespace {

const char* kindName(Kind kind)
{
    switch (kind) {
    case Kind::None:
        return "None";
    case Kind::Bool:
        return "bool";
    case Kind::Int:
        return "int";
    case Kind::Float:
        return "float";
    case Kind::String:
        return "str";
    case Kind::Bytes:
        return "bytes";
    case Kind::List:
        return "list";
    case Kind::Tuple:
        return "tuple";
    case Kind::Dict:
        return "dict";
    case Kind::Tensor:
        return "tensor";
    case Kind::Storage:
        return "storage";
    case Kind::Global:
        return "global";
    case Kind::Opaque:
        return "object";
    }
    return "value";
}

// A string that identifies a hashable key, or empty when the key is not hashable.
std::string fingerprint(const Value& key)
{
    switch (key.kind()) {
    case Kind::None:
        return "N";
    case Kind::Bool:
        return key.toBool() ? "B1" : "B0";
    case Kind::Int:
        return "I" + std::to_string(key.toInt());
    case Kind::Float:
        return "F" + QString::number(key.toDouble(), 'g', 17).toStdString();
    case Kind::String:
        return "S" + key.toStr().toStdString();
    case Kind::Bytes:
        return "Y" + key.toBytes().toStdString();
    case Kind::Tuple: {
        std::string result = "T(";
        for (const ValuePtr& item : key.items()) {
            const std::string part = fingerprint(*item);
            if (part.empty()) {
                return {};
            }
            result += std::to_string(part.size()) + ":" + part;
        }
        return result + ")";
    }
    default:
        return {};
    }
}

} // namespace

ValuePtr Value::none()
{
    return ValuePtr(new Value(Kind::None));
}

ValuePtr Value::boolean(bool value)
{
    ValuePtr result(new Value(Kind::Bool));
    result->m_bool = value;
    return result;
}

ValuePtr Value::integer(int64_t value)
{
    ValuePtr result(new Value(Kind::Int));
    result->m_int = value;
    return result;
}

ValuePtr Value::real(double value)
{
    ValuePtr result(new Value(Kind::Float));
    result->m_float = value;
    return result;
}

ValuePtr Value::string(const QString& value)
{
    ValuePtr result(new Value(Kind::String));
    result->m_string = value;
    return result;
}

ValuePtr Value::bytes(const QByteArray& value)
{
    ValuePtr result(new Value(Kind::Bytes));
    result->m_bytes = value;
    return result;
}

ValuePtr Value::list(std::vector<ValuePtr> items)
{
    ValuePtr result(new Value(Kind::List));
    for (ValuePtr& item : items) {
        result->append(item);
    }
    return result;
}

ValuePtr Value::tuple(std::vector<ValuePtr> items)
{
    ValuePtr result(new Value(Kind::Tuple));
    for (const ValuePtr& item : items) {
        result->adoptChild(item);
    }
    result->m_items = std::move(items);
    return result;
}

ValuePtr Value::dict()
{
    return ValuePtr(new Value(Kind::Dict));
}

ValuePtr Value::orderedDict()
{
    ValuePtr result(new Value(Kind::Dict));
    result->m_orderedDict = true;
    return result;
}

ValuePtr Value::tensor(const at::Tensor& tensor)
{
    ValuePtr result(new Value(Kind::Tensor));
    result->m_tensor = tensor;
    return result;
}

ValuePtr Value::storage(const at::Tensor& flatData)
{
    ValuePtr result(new Value(Kind::Storage));
    result->m_tensor = flatData;
    return result;
}

ValuePtr Value::global(const QString& module, const QString& name)
{
    ValuePtr result(new Value(Kind::Global));
    result->m_module = module;
    result->m_name = name;
    return result;
}

ValuePtr Value::opaque(const QString& module, const QString& name)
{
    ValuePtr result(new Value(Kind::Opaque));
    result->m_module = module;
    result->m_name = name;
    return result;
}

QString Value::typeName() const
{
    if (m_kind == Kind::Dict && m_orderedDict) {
        return QStringLiteral("OrderedDict");
    }
    if (m_kind == Kind::Global || m_kind == Kind::Opaque) {
        return m_module + QLatin1Char('.') + m_name;
    }
    return QString::fromLatin1(kindName(m_kind));
}

void Value::requireKind(Kind kind, const char* what) const
{
    if (m_kind != kind) {
        throw Error(
            QStringLiteral("expected %1, found %2").arg(QString::fromLatin1(what), typeName()));
    }
}

bool Value::toBool() const
{
    requireKind(Kind::Bool, "bool");
    return m_bool;
}

int64_t Value::toInt() const
{
    requireKind(Kind::Int, "int");
    return m_int;
}

double Value::toDouble() const
{
    if (m_kind == Kind::Int) {
        return static_cast<double>(m_int);
    }
    requireKind(Kind::Float, "float");
    return m_float;
}

const QString& Value::toStr() const
{
    requireKind(Kind::String, "str");
    return m_string;
}

const QByteArray& Value::toBytes() const
{
    requireKind(Kind::Bytes, "bytes");
    return m_bytes;
}

const at::Tensor& Value::toTensor() const
{
    if (m_kind != Kind::Storage) {
        requireKind(Kind::Tensor, "tensor");
    }
    return m_tensor;
}

const std::vector<ValuePtr>& Value::items() const
{
    if (m_kind != Kind::Tuple) {
        requireKind(Kind::List, "list or tuple");
    }
    return m_items;
}

std::vector<ValuePtr>& Value::mutableItems()
{
    requireKind(Kind::List, "list");
    requireMutable();
    return m_items;
}

void Value::append(const ValuePtr& item)
{
    std::vector<ValuePtr>& items = mutableItems();
    adoptChild(item);
    items.push_back(item);
}

const std::vector<DictEntry>& Value::entries() const
{
    requireKind(Kind::Dict, "dict");
    return m_entries;
}

void Value::set(const ValuePtr& key, const ValuePtr& value)
{
    requireKind(Kind::Dict, "dict");
    requireMutable();

    const std::string print = fingerprint(*key);
    if (print.empty()) {
        throw Error(QStringLiteral("a %1 cannot be a dict key").arg(key->typeName()));
    }
    adoptChild(key);
    adoptChild(value);

    const auto existing = m_index.find(print);
    if (existing != m_index.end()) {
        m_entries[existing->second].value = value;
        return;
    }
    m_index.emplace(print, m_entries.size());
    m_entries.push_back({key, value});
}

ValuePtr Value::get(const QString& key) const
{
    requireKind(Kind::Dict, "dict");
    const auto found = m_index.find("S" + key.toStdString());
    return found == m_index.end() ? nullptr : m_entries[found->second].value;
}

ValuePtr Value::get(int64_t key) const
{
    requireKind(Kind::Dict, "dict");
    const auto found = m_index.find("I" + std::to_string(key));
    return found == m_index.end() ? nullptr : m_entries[found->second].value;
}

void Value::setAttributes(const ValuePtr& state)
{
    requireMutable();
    adoptChild(state);
    m_attributes = state;
}

bool Value::isGlobal(const char* module, const char* name) const
{
    return m_kind == Kind::Global && m_module == QLatin1String(module) &&
           m_name == QLatin1String(name);
}

void Value::requireMutable() const
{
    // Python's pickler fills every container before it uses it anywhere; a later change means a
    // recursive structure, which no torch file has and which could form a cycle.
    if (m_sealed) {
        throw Error(QStringLiteral("the pickle changes a %1 after using it (recursive objects are "
                                   "not supported)")
                        .arg(typeName()));
    }
}

void Value::adoptChild(const ValuePtr& child)
{
    if (!child) {
        throw Error(QStringLiteral("missing value"));
    }
    if (child.get() == this) {
        throw Error(QStringLiteral("a %1 contains itself (recursive objects are not supported)")
                        .arg(typeName()));
    }
    child->seal();
    m_depth = std::max(m_depth, child->m_depth + 1);
    if (m_depth > kMaxNestingDepth) {
        throw Error(QStringLiteral("objects nested deeper than %1 levels").arg(kMaxNestingDepth));
    }
}

ValuePtr makeStringList(const std::vector<QString>& items)
{
    ValuePtr result = Value::list();
    for (const QString& item : items) {
        result->append(Value::string(item));
    }
    return result;
}

ValuePtr makeFloatList(const std::vector<double>& items)
{
    ValuePtr result = Value::list();
    for (double item : items) {
        result->append(Value::real(item));
    }
    return result;
}

} // namespace studio::py
