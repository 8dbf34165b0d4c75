#include "core/io/Unpickler.h"

#include "core/Error.h"
#include "core/io/StorageTypes.h"

#include <ATen/ATen.h>

#include <cstring>
#include <limits>
#include <map>

namespace studio::py {

namespace {

// Pickle opcodes (Python's Lib/pickle.py names).
enum Opcode : uint8_t
{
    kMark = '(',
    kStop = '.',
    kPop = '0',
    kPopMark = '1',
    kDup = '2',
    kBinInt = 'J',
    kBinInt1 = 'K',
    kBinInt2 = 'M',
    kNone = 'N',
    kBinPersId = 'Q',
    kReduce = 'R',
    kBinString = 'T',
    kShortBinString = 'U',
    kBinUnicode = 'X',
    kAppend = 'a',
    kBuild = 'b',
    kGlobal = 'c',
    kDict = 'd',
    kEmptyDict = '}',
    kAppends = 'e',
    kBinGet = 'h',
    kLongBinGet = 'j',
    kList = 'l',
    kEmptyList = ']',
    kBinPut = 'q',
    kLongBinPut = 'r',
    kSetItem = 's',
    kTuple = 't',
    kEmptyTuple = ')',
    kSetItems = 'u',
    kBinFloat = 'G',
    kProto = 0x80,
    kNewObj = 0x81,
    kTuple1 = 0x85,
    kTuple2 = 0x86,
    kTuple3 = 0x87,
    kNewTrue = 0x88,
    kNewFalse = 0x89,
    kLong1 = 0x8a,
    kLong4 = 0x8b,
    kBinBytes = 'B',
    kShortBinBytes = 'C',
    kShortBinUnicode = 0x8c,
    kBinUnicode8 = 0x8d,
    kBinBytes8 = 0x8e,
    kStackGlobal = 0x93,
    kMemoize = 0x94,
    kFrame = 0x95,
};

bool isKnownGlobal(const QString& module, const QString& name)
{
    if (module == QLatin1String("collections")) {
        return name == QLatin1String("OrderedDict");
    }
    if (module == QLatin1String("torch._utils")) {
        return name == QLatin1String("_rebuild_tensor_v2") ||
               name == QLatin1String("_rebuild_parameter") ||
               name == QLatin1String("_rebuild_parameter_with_state");
    }
    if (module == QLatin1String("torch")) {
        return storageClassType(name).has_value();
    }
    return false;
}

// Modules whose objects appear in training checkpoints (callbacks, hyper-parameters, numpy
// scalars for step counters). Such objects are skipped when the caller allows it.
bool isTrainingObjectGlobal(const QString& module, const QString& name)
{
    static const char* const kModulePrefixes[] = {"pytorch_lightning.", "lightning.",
                                                  "lightning_fabric.", "numpy.core.", "numpy"};
    for (const char* prefix : kModulePrefixes) {
        if (module == QLatin1String(prefix) || module.startsWith(QLatin1String(prefix))) {
            return true;
        }
    }
    if (module == QLatin1String("_codecs")) {
        return name == QLatin1String("encode"); // how Python 3 pickles bytes at protocol 2
    }
    if (module == QLatin1String("collections")) {
        return name == QLatin1String("defaultdict");
    }
    if (module == QLatin1String("builtins") || module == QLatin1String("__builtin__")) {
        return name == QLatin1String("set") || name == QLatin1String("frozenset") ||
               name == QLatin1String("slice");
    }
    if (module == QLatin1String("torch")) {
        return name == QLatin1String("device") || name == QLatin1String("Size");
    }
    return false;
}

class Reader
{
public:
    Reader(const char* data, size_t size, const UnpickleOptions& options)
        : m_data(reinterpret_cast<const uint8_t*>(data)), m_size(size), m_options(options)
    {
    }

    ValuePtr run();

private:
    [[noreturn]] void fail(const QString& what) const;

    // Input.
    const uint8_t* take(size_t count);
    uint8_t takeByte() { return *take(1); }
    uint64_t takeLittleEndian(size_t count);
    size_t takeLength(size_t lengthBytes);
    QString takeLine();

    // Stack.
    void push(ValuePtr value) { m_stack.push_back(std::move(value)); }
    ValuePtr pop();
    ValuePtr& top();
    std::vector<ValuePtr> popToMark();

    // Memo.
    void memoize(uint64_t index);
    ValuePtr fromMemo(uint64_t index) const;

    bool step(uint8_t opcode);
    void pushLong(size_t lengthBytes);
    void pushGlobal(const QString& module, const QString& name);
    void appendItems(const ValuePtr& list, const std::vector<ValuePtr>& items);
    void setItems(const ValuePtr& dict, const std::vector<ValuePtr>& items);
    void reduce();
    void build();
    void newObject();
    void persistentLoad();
    ValuePtr callKnownGlobal(const Value& callable, const std::vector<ValuePtr>& args);
    ValuePtr rebuildTensor(const std::vector<ValuePtr>& args);

    const uint8_t* m_data;
    size_t m_size;
    size_t m_position = 0;
    size_t m_opcodeStart = 0;
    const UnpickleOptions& m_options;
    std::vector<ValuePtr> m_stack;
    std::vector<size_t> m_marks;
    std::map<uint64_t, ValuePtr> m_memo;
};

void Reader::fail(const QString& what) const
{
    throw Error(QStringLiteral("%1: invalid pickle at byte %2: %3")
                    .arg(m_options.sourceName)
                    .arg(m_opcodeStart)
                    .arg(what));
}

const uint8_t* Reader::take(size_t count)
{
    if (count > m_size - m_position) {
        fail(QStringLiteral("the data ends early (the file is truncated or damaged)"));
    }
    const uint8_t* result = m_data + m_position;
    m_position += count;
    return result;
}

uint64_t Reader::takeLittleEndian(size_t count)
{
    const uint8_t* bytes = take(count);
    uint64_t value = 0;
    for (size_t i = 0; i < count; ++i) {
        value |= static_cast<uint64_t>(bytes[i]) << (8 * i);
    }
    return value;
}

size_t Reader::takeLength(size_t lengthBytes)
{
    const uint64_t length = takeLittleEndian(lengthBytes);
    // A length can never exceed what is left of the input; checking here avoids allocating it.
    if (length > m_size - m_position) {
        fail(QStringLiteral("a length of %1 bytes runs past the end of the data").arg(length));
    }
    return static_cast<size_t>(length);
}

QString Reader::takeLine()
{
    const size_t start = m_position;
    while (m_position < m_size && m_data[m_position] != '\n') {
        ++m_position;
    }
    if (m_position == m_size) {
        fail(QStringLiteral("a global name is not terminated"));
    }
    const auto* text = reinterpret_cast<const char*>(m_data + start);
    const QString line = QString::fromUtf8(text, static_cast<qsizetype>(m_position - start));
    ++m_position;
    return line;
}

ValuePtr Reader::pop()
{
    if (m_stack.empty() || (!m_marks.empty() && m_stack.size() <= m_marks.back())) {
        fail(QStringLiteral("the stack is empty"));
    }
    ValuePtr value = std::move(m_stack.back());
    m_stack.pop_back();
    return value;
}

ValuePtr& Reader::top()
{
    if (m_stack.empty() || (!m_marks.empty() && m_stack.size() <= m_marks.back())) {
        fail(QStringLiteral("the stack is empty"));
    }
    return m_stack.back();
}

std::vector<ValuePtr> Reader::popToMark()
{
    if (m_marks.empty()) {
        fail(QStringLiteral("no mark on the stack"));
    }
    const size_t mark = m_marks.back();
    m_marks.pop_back();
    std::vector<ValuePtr> items(std::make_move_iterator(m_stack.begin() + mark),
                                std::make_move_iterator(m_stack.end()));
    m_stack.resize(mark);
    return items;
}

void Reader::memoize(uint64_t index)
{
    m_memo[index] = top();
}

ValuePtr Reader::fromMemo(uint64_t index) const
{
    const auto found = m_memo.find(index);
    if (found == m_memo.end()) {
        fail(QStringLiteral("memo entry %1 is used before it is defined").arg(index));
    }
    return found->second;
}

void Reader::pushLong(size_t lengthBytes)
{
    const size_t length = takeLength(lengthBytes);
    if (length > 8) {
        fail(QStringLiteral("integers wider than 64 bits are not supported"));
    }
    const uint8_t* bytes = take(length);
    uint64_t value = 0;
    for (size_t i = 0; i < length; ++i) {
        value |= static_cast<uint64_t>(bytes[i]) << (8 * i);
    }
    // Two's complement: sign-extend from the top byte.
    if (length > 0 && length < 8 && (bytes[length - 1] & 0x80)) {
        value |= ~uint64_t(0) << (8 * length);
    }
    push(Value::integer(static_cast<int64_t>(value)));
}

void Reader::pushGlobal(const QString& module, const QString& name)
{
    if (isKnownGlobal(module, name) ||
        (m_options.allowUnknownGlobals && isTrainingObjectGlobal(module, name))) {
        push(Value::global(module, name));
        return;
    }
    fail(QStringLiteral("it names '%1.%2', which this kind of file never contains; refusing to "
                        "load it (files are read as data, their code is never run)")
             .arg(module, name));
}

void Reader::appendItems(const ValuePtr& list, const std::vector<ValuePtr>& items)
{
    if (!list->is(Kind::List)) {
        fail(QStringLiteral("APPEND on a %1").arg(list->typeName()));
    }
    for (const ValuePtr& item : items) {
        list->append(item);
    }
}

void Reader::setItems(const ValuePtr& dict, const std::vector<ValuePtr>& items)
{
    if (!dict->is(Kind::Dict)) {
        fail(QStringLiteral("SETITEM on a %1").arg(dict->typeName()));
    }
    if (items.size() % 2 != 0) {
        fail(QStringLiteral("SETITEMS with an odd number of values"));
    }
    for (size_t i = 0; i < items.size(); i += 2) {
        dict->set(items[i], items[i + 1]);
    }
}

void Reader::reduce()
{
    const ValuePtr args = pop();
    const ValuePtr callable = pop();
    if (!args->is(Kind::Tuple)) {
        fail(QStringLiteral("REDUCE arguments are a %1, not a tuple").arg(args->typeName()));
    }
    if (!callable->is(Kind::Global)) {
        fail(QStringLiteral("REDUCE calls a %1").arg(callable->typeName()));
    }
    args->seal();

    if (isKnownGlobal(callable->module(), callable->name())) {
        push(callKnownGlobal(*callable, args->items()));
    } else {
        push(Value::opaque(callable->module(), callable->name()));
    }
}

void Reader::newObject()
{
    const ValuePtr args = pop();
    const ValuePtr cls = pop();
    if (!cls->is(Kind::Global) || isKnownGlobal(cls->module(), cls->name())) {
        fail(QStringLiteral("NEWOBJ of a %1 is not supported").arg(cls->typeName()));
    }
    push(Value::opaque(cls->module(), cls->name()));
}

void Reader::build()
{
    const ValuePtr state = pop();
    const ValuePtr& target = top();
    if (target->is(Kind::Opaque)) {
        return; // the state of a skipped object is dropped with it
    }
    if (target->is(Kind::Dict)) {
        target->setAttributes(state); // e.g. a state dict's `_metadata`
        return;
    }
    fail(QStringLiteral("BUILD on a %1 is not supported").arg(target->typeName()));
}

void Reader::persistentLoad()
{
    const ValuePtr id = pop();
    if (!m_options.persistentLoad) {
        fail(QStringLiteral("it refers to external data, which this kind of file never does"));
    }
    id->seal();
    push(m_options.persistentLoad(id));
}

ValuePtr Reader::callKnownGlobal(const Value& callable, const std::vector<ValuePtr>& args)
{
    if (callable.isGlobal("collections", "OrderedDict")) {
        if (!args.empty()) {
            fail(QStringLiteral("OrderedDict is built with arguments"));
        }
        return Value::orderedDict();
    }
    if (callable.isGlobal("torch._utils", "_rebuild_tensor_v2")) {
        return rebuildTensor(args);
    }
    if (callable.module() == QLatin1String("torch._utils")) {
        // _rebuild_parameter(data, requires_grad, hooks[, state]): a Parameter is its tensor.
        if (args.empty() || !args[0]->is(Kind::Tensor)) {
            fail(QStringLiteral("%1 needs a tensor").arg(callable.name()));
        }
        return args[0];
    }
    fail(QStringLiteral("'%1' cannot be called").arg(callable.typeName()));
}

// Checked a * b + c for non-negative operands; false on overflow.
bool multiplyAdd(int64_t a, int64_t b, int64_t c, int64_t& result)
{
    if (b != 0 && a > (std::numeric_limits<int64_t>::max() - c) / b) {
        return false;
    }
    result = a * b + c;
    return true;
}

ValuePtr Reader::rebuildTensor(const std::vector<ValuePtr>& args)
{
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, meta])
    if (args.size() < 4 || !args[0]->is(Kind::Storage) || !args[1]->is(Kind::Int) ||
        !args[2]->is(Kind::Tuple) || !args[3]->is(Kind::Tuple)) {
        fail(QStringLiteral("a tensor is described with unexpected arguments"));
    }
    const at::Tensor& storage = args[0]->toTensor();
    const int64_t offset = args[1]->toInt();
    const std::vector<ValuePtr>& sizeItems = args[2]->items();
    const std::vector<ValuePtr>& strideItems = args[3]->items();
    if (sizeItems.size() != strideItems.size() || sizeItems.size() > 64) {
        fail(QStringLiteral("a tensor's size and stride do not match"));
    }

    std::vector<int64_t> sizes;
    std::vector<int64_t> strides;
    int64_t lastIndex = offset;
    bool empty = false;
    for (size_t i = 0; i < sizeItems.size(); ++i) {
        if (!sizeItems[i]->is(Kind::Int) || !strideItems[i]->is(Kind::Int)) {
            fail(QStringLiteral("a tensor's size or stride is not an integer"));
        }
        const int64_t size = sizeItems[i]->toInt();
        const int64_t stride = strideItems[i]->toInt();
        if (size < 0 || stride < 0) {
            fail(QStringLiteral("a tensor has a negative size or stride"));
        }
        empty = empty || size == 0;
        if (size > 0 && !multiplyAdd(size - 1, stride, lastIndex, lastIndex)) {
            fail(QStringLiteral("a tensor's shape is too large"));
        }
        sizes.push_back(size);
        strides.push_back(stride);
    }
    if (offset < 0 || (!empty && lastIndex >= storage.numel())) {
        fail(QStringLiteral("a tensor of shape %1 reaches past the end of its storage (%2 values)")
                 .arg(QString::fromStdString(c10::str(c10::IntArrayRef(sizes))))
                 .arg(storage.numel()));
    }
    if (empty) {
        return Value::tensor(at::empty(sizes, storage.options()));
    }
    return Value::tensor(storage.as_strided(sizes, strides, offset));
}

bool Reader::step(uint8_t opcode)
{
    switch (opcode) {
    case kProto:
        if (takeByte() > 5) {
            fail(QStringLiteral("pickle protocol newer than 5"));
        }
        return true;
    case kFrame:
        take(8); // frames only group opcodes; the data is already in memory
        return true;
    case kStop:
        return false;
    case kMark:
        m_marks.push_back(m_stack.size());
        return true;
    case kPop:
        if (!m_marks.empty() && m_marks.back() == m_stack.size()) {
            m_marks.pop_back();
        } else {
            pop();
        }
        return true;
    case kPopMark:
        popToMark();
        return true;
    case kDup:
        push(top());
        return true;
    case kNone:
        push(Value::none());
        return true;
    case kNewTrue:
        push(Value::boolean(true));
        return true;
    case kNewFalse:
        push(Value::boolean(false));
        return true;
    case kBinInt:
        push(Value::integer(static_cast<int32_t>(takeLittleEndian(4))));
        return true;
    case kBinInt1:
        push(Value::integer(takeByte()));
        return true;
    case kBinInt2:
        push(Value::integer(static_cast<int64_t>(takeLittleEndian(2))));
        return true;
    case kLong1:
        pushLong(1);
        return true;
    case kLong4:
        pushLong(4);
        return true;
    case kBinFloat: {
        const uint8_t* bytes = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) {
            bits = (bits << 8) | bytes[i]; // big-endian
        }
        double value = 0.0;
        std::memcpy(&value, &bits, sizeof value);
        push(Value::real(value));
        return true;
    }
    case kBinUnicode:
    case kShortBinUnicode:
    case kBinUnicode8: {
        const size_t length = takeLength(opcode == kShortBinUnicode ? 1
                                         : opcode == kBinUnicode    ? 4
                                                                    : 8);
        const auto* text = reinterpret_cast<const char*>(take(length));
        push(Value::string(QString::fromUtf8(text, static_cast<qsizetype>(length))));
        return true;
    }
    case kBinString:
    case kShortBinString: {
        // Python 2 str: torch decodes these as latin-1 text.
        const size_t length = takeLength(opcode == kShortBinString ? 1 : 4);
        const auto* text = reinterpret_cast<const char*>(take(length));
        push(Value::string(QString::fromLatin1(text, static_cast<qsizetype>(length))));
        return true;
    }
    case kBinBytes:
    case kShortBinBytes:
    case kBinBytes8: {
        const size_t length = takeLength(opcode == kShortBinBytes ? 1
                                         : opcode == kBinBytes    ? 4
                                                                  : 8);
        const auto* bytes = reinterpret_cast<const char*>(take(length));
        push(Value::bytes(QByteArray(bytes, static_cast<qsizetype>(length))));
        return true;
    }
    case kEmptyList:
        push(Value::list());
        return true;
    case kList:
        push(Value::list(popToMark()));
        return true;
    case kAppend: {
        ValuePtr item = pop();
        appendItems(top(), {item});
        return true;
    }
    case kAppends: {
        std::vector<ValuePtr> items = popToMark();
        appendItems(top(), items);
        return true;
    }
    case kEmptyTuple:
        push(Value::tuple());
        return true;
    case kTuple:
        push(Value::tuple(popToMark()));
        return true;
    case kTuple1:
    case kTuple2:
    case kTuple3: {
        std::vector<ValuePtr> items(static_cast<size_t>(opcode - kTuple1 + 1));
        for (auto item = items.rbegin(); item != items.rend(); ++item) {
            *item = pop();
        }
        push(Value::tuple(std::move(items)));
        return true;
    }
    case kEmptyDict:
        push(Value::dict());
        return true;
    case kDict: {
        ValuePtr dict = Value::dict();
        setItems(dict, popToMark());
        push(dict);
        return true;
    }
    case kSetItem: {
        ValuePtr value = pop();
        ValuePtr key = pop();
        setItems(top(), {key, value});
        return true;
    }
    case kSetItems: {
        std::vector<ValuePtr> items = popToMark();
        setItems(top(), items);
        return true;
    }
    case kBinPut:
        memoize(takeByte());
        return true;
    case kLongBinPut:
        memoize(takeLittleEndian(4));
        return true;
    case kMemoize:
        memoize(m_memo.size());
        return true;
    case kBinGet:
        push(fromMemo(takeByte()));
        return true;
    case kLongBinGet:
        push(fromMemo(takeLittleEndian(4)));
        return true;
    case kGlobal: {
        const QString module = takeLine();
        const QString name = takeLine();
        pushGlobal(module, name);
        return true;
    }
    case kStackGlobal: {
        const ValuePtr name = pop();
        const ValuePtr module = pop();
        if (!name->is(Kind::String) || !module->is(Kind::String)) {
            fail(QStringLiteral("STACK_GLOBAL needs two strings"));
        }
        pushGlobal(module->toStr(), name->toStr());
        return true;
    }
    case kReduce:
        reduce();
        return true;
    case kNewObj:
        newObject();
        return true;
    case kBuild:
        build();
        return true;
    case kBinPersId:
        persistentLoad();
        return true;
    default:
        fail(QStringLiteral("unsupported opcode 0x%1").arg(opcode, 2, 16, QLatin1Char('0')));
    }
}

ValuePtr Reader::run()
{
    try {
        for (;;) {
            m_opcodeStart = m_position;
            if (!step(takeByte())) {
                break;
            }
        }
    } catch (const c10::Error& error) {
        fail(QString::fromStdString(error.what_without_backtrace()));
    }

    if (m_stack.size() != 1 || !m_marks.empty()) {
        fail(QStringLiteral("the pickle does not end with exactly one object"));
    }
    return m_stack.front();
}

} // namespace

ValuePtr unpickle(const char* data, size_t size, const UnpickleOptions& options)
{
    Reader reader(data, size, options);
    try {
        return reader.run();
    } catch (const Error& error) {
        // Errors from the object model (sealed containers, depth) lack the location: add it.
        const QString message = error.message();
        if (message.startsWith(options.sourceName)) {
            throw;
        }
        throw Error(QStringLiteral("%1: invalid pickle: %2").arg(options.sourceName, message));
    }
}

} // namespace studio::py
