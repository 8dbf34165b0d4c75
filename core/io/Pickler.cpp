#include "core/io/Pickler.h"

#include "core/Error.h"
#include "core/io/StorageTypes.h"

#include <ATen/ATen.h>

#include <cstring>
#include <limits>
#include <map>

namespace studio::py {

namespace {

constexpr size_t kBatchSize = 1000; // Python's pickle batches APPENDS/SETITEMS by 1000

class Writer
{
public:
    Pickled run(const ValuePtr& root);

private:
    void put(char opcode) { m_out.append(opcode); }
    void putLittleEndian(uint64_t value, int count);
    void save(const Value& value);
    void saveInt(int64_t value);
    void saveFloat(double value);
    void saveString(const QString& value);
    void saveList(const Value& list);
    void saveTuple(const std::vector<ValuePtr>& items);
    void saveDict(const Value& dict);
    void saveDictItems(const std::vector<DictEntry>& entries);
    void saveGlobal(const char* module, const char* name);
    void saveTensor(const at::Tensor& tensor);
    void saveIntTuple(c10::IntArrayRef values);

    QByteArray m_out;
    std::vector<at::Tensor> m_storages;
    std::map<std::string, uint32_t> m_globalMemo;
    uint32_t m_nextMemo = 0;
};

Pickled Writer::run(const ValuePtr& root)
{
    put('\x80');
    put('\x02');
    save(*root);
    put('.');
    return {m_out, m_storages};
}

void Writer::putLittleEndian(uint64_t value, int count)
{
    for (int i = 0; i < count; ++i) {
        m_out.append(static_cast<char>((value >> (8 * i)) & 0xff));
    }
}

void Writer::save(const Value& value)
{
    switch (value.kind()) {
    case Kind::None:
        put('N');
        return;
    case Kind::Bool:
        put(value.toBool() ? '\x88' : '\x89');
        return;
    case Kind::Int:
        saveInt(value.toInt());
        return;
    case Kind::Float:
        saveFloat(value.toDouble());
        return;
    case Kind::String:
        saveString(value.toStr());
        return;
    case Kind::List:
        saveList(value);
        return;
    case Kind::Tuple:
        saveTuple(value.items());
        return;
    case Kind::Dict:
        saveDict(value);
        return;
    case Kind::Tensor:
        saveTensor(value.toTensor());
        return;
    default:
        throw Error(QStringLiteral("cannot save a %1 in a torch file").arg(value.typeName()));
    }
}

void Writer::saveInt(int64_t value)
{
    if (value >= 0 && value <= 0xff) {
        put('K');
        putLittleEndian(static_cast<uint64_t>(value), 1);
    } else if (value >= 0 && value <= 0xffff) {
        put('M');
        putLittleEndian(static_cast<uint64_t>(value), 2);
    } else if (value >= std::numeric_limits<int32_t>::min() &&
               value <= std::numeric_limits<int32_t>::max()) {
        put('J');
        putLittleEndian(static_cast<uint64_t>(value), 4);
    } else {
        put('\x8a'); // LONG1 with 8 bytes of two's complement
        put('\x08');
        putLittleEndian(static_cast<uint64_t>(value), 8);
    }
}

void Writer::saveFloat(double value)
{
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    put('G');
    for (int i = 7; i >= 0; --i) {
        m_out.append(static_cast<char>((bits >> (8 * i)) & 0xff)); // big-endian
    }
}

void Writer::saveString(const QString& value)
{
    const QByteArray utf8 = value.toUtf8();
    put('X');
    putLittleEndian(static_cast<uint64_t>(utf8.size()), 4);
    m_out.append(utf8);
}

void Writer::saveList(const Value& list)
{
    put(']');
    const std::vector<ValuePtr>& items = list.items();
    for (size_t start = 0; start < items.size(); start += kBatchSize) {
        const size_t end = std::min(items.size(), start + kBatchSize);
        if (end - start == 1) {
            save(*items[start]);
            put('a');
            continue;
        }
        put('(');
        for (size_t i = start; i < end; ++i) {
            save(*items[i]);
        }
        put('e');
    }
}

void Writer::saveTuple(const std::vector<ValuePtr>& items)
{
    if (items.empty()) {
        put(')');
        return;
    }
    if (items.size() > 3) {
        put('(');
    }
    for (const ValuePtr& item : items) {
        save(*item);
    }
    put(items.size() > 3 ? 't' : static_cast<char>(0x85 + items.size() - 1));
}

void Writer::saveDict(const Value& dict)
{
    if (dict.isOrderedDict()) {
        saveGlobal("collections", "OrderedDict");
        put(')');
        put('R');
    } else {
        put('}');
    }
    saveDictItems(dict.entries());

    if (dict.attributes()) {
        save(*dict.attributes());
        put('b');
    }
}

void Writer::saveDictItems(const std::vector<DictEntry>& entries)
{
    for (size_t start = 0; start < entries.size(); start += kBatchSize) {
        const size_t end = std::min(entries.size(), start + kBatchSize);
        if (end - start == 1) {
            save(*entries[start].key);
            save(*entries[start].value);
            put('s');
            continue;
        }
        put('(');
        for (size_t i = start; i < end; ++i) {
            save(*entries[i].key);
            save(*entries[i].value);
        }
        put('u');
    }
}

void Writer::saveGlobal(const char* module, const char* name)
{
    // Globals repeat for every tensor; memoize them as Python's pickler does.
    const std::string key = std::string(module) + "\n" + name;
    const auto found = m_globalMemo.find(key);
    if (found != m_globalMemo.end()) {
        put('j');
        putLittleEndian(found->second, 4);
        return;
    }
    put('c');
    m_out.append(module).append('\n').append(name).append('\n');
    put('r');
    putLittleEndian(m_nextMemo, 4);
    m_globalMemo[key] = m_nextMemo++;
}

void Writer::saveIntTuple(c10::IntArrayRef values)
{
    std::vector<ValuePtr> items;
    for (int64_t value : values) {
        items.push_back(Value::integer(value));
    }
    saveTuple(items);
}

void Writer::saveTensor(const at::Tensor& tensor)
{
    const at::Tensor data = tensor.detach().to(at::kCPU).contiguous();
    const QString storageClass = storageClassName(data.scalar_type());
    const auto key = static_cast<int64_t>(m_storages.size());
    m_storages.push_back(data);

    saveGlobal("torch._utils", "_rebuild_tensor_v2");
    put('(');

    // Persistent id: ('storage', torch.<Type>Storage, key, location, numel).
    put('(');
    saveString(QStringLiteral("storage"));
    saveGlobal("torch", storageClass.toLatin1().constData());
    saveString(QString::number(key));
    saveString(QStringLiteral("cpu"));
    saveInt(data.numel());
    put('t');
    put('Q');

    saveInt(0); // storage offset
    saveIntTuple(data.sizes());
    saveIntTuple(data.strides());
    put('\x89'); // requires_grad = False
    saveGlobal("collections", "OrderedDict");
    put(')');
    put('R'); // backward hooks: an empty OrderedDict
    put('t');
    put('R');
}

} // namespace

Pickled pickle(const ValuePtr& root)
{
    return Writer().run(root);
}

} // namespace studio::py
