// The restricted unpickler and the pickler: pickles made by Python, round trips, and hostile
// input that must end in a clear error (this suite also runs under AddressSanitizer).

#include "support/TestSupport.h"

#include "core/io/Pickler.h"
#include "core/io/Unpickler.h"

#include <QObject>

#include <random>

using namespace studio;
using py::Kind;
using py::Value;
using py::ValuePtr;

namespace {

// Made by Python 3.11: pickle.dumps(obj, protocol=N).hex()
// {'a': [1, 2.5, None, True, False], 7: ('x', -3, 70000, 2**40, -2**40)}, protocol 2
const char* const kProtocol2 =
    "80027d71002858010000006171015d7102284b014740040000000000004e8889654b07285801000000787103"
    "4afdffffff4a701101008a060000000000018a060000000000ff747104752e";
// {'a': [1, 2.5, None], 'é': ('long string ' * 3,)}, protocol 4 (FRAME, MEMOIZE, short str)
const char* const kProtocol4 =
    "80049547000000000000007d94288c0161945d94284b014740040000000000004e658c02c3a9948c246c6f6e"
    "6720737472696e67206c6f6e6720737472696e67206c6f6e6720737472696e6720948594752e";
// [{'k': (1, 2, 3, 4)}, [], (), {}], protocol 5
const char* const kProtocol5 =
    "8005951c000000000000005d94287d948c016b94284b014b024b034b047494735d94297d94652e";
// collections.OrderedDict([('b', 1), ('a', 2)]), protocol 2
const char* const kOrderedDict =
    "800263636f6c6c656374696f6e730a4f726465726564446963740a7100295271012858010000006271024b01"
    "58010000006171034b02752e";
// os.system, protocol 2 and protocol 4 (STACK_GLOBAL)
const char* const kOsSystem = "800263706f7369780a73797374656d0a71002e";
const char* const kOsSystemStack = "80049514000000000000008c05706f736978948c0673797374656d9493942e";
// b'\x00\x01' in protocol 2 is pickled through _codecs.encode, which is refused too.
const char* const kBytesProtocol2 =
    "8002635f636f646563730a656e636f64650a710058020000000001710158060000006c6174696e3171028671"
    "035271042e";

QByteArray hex(const char* text)
{
    return QByteArray::fromHex(text);
}

ValuePtr load(const QByteArray& bytes, bool allowUnknownGlobals = false)
{
    py::UnpickleOptions options;
    options.sourceName = QStringLiteral("test.pkl");
    options.allowUnknownGlobals = allowUnknownGlobals;
    return py::unpickle(bytes.constData(), static_cast<size_t>(bytes.size()), options);
}

QByteArray text(const char* characters)
{
    return QByteArray(characters);
}

// A pickle assembled from opcodes, for hostile cases Python would never write.
QByteArray ops(std::initializer_list<int> bytes)
{
    QByteArray result;
    for (int byte : bytes) {
        result.append(static_cast<char>(byte));
    }
    return result;
}

} // namespace

class TestPickle : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void testReadsPythonProtocol2();
    void testReadsPythonProtocol4And5();
    void testReadsOrderedDict();
    void testRoundTripKeepsEveryKind();
    void testRoundTripOfLongContainersUsesBatches();
    void testForeignGlobalsAreRefused_data();
    void testForeignGlobalsAreRefused();
    void testUnknownGlobalsBecomeInertWhenAllowed();
    void testHostilePicklesFailCleanly_data();
    void testHostilePicklesFailCleanly();
    void testEveryTruncationFailsCleanly();
    void testRandomCorruptionNeverCrashes();
};

void TestPickle::testReadsPythonProtocol2()
{
    const ValuePtr root = load(hex(kProtocol2));
    QVERIFY(root->is(Kind::Dict));
    const ValuePtr list = root->get(QStringLiteral("a"));
    QCOMPARE(list->items().size(), size_t(5));
    QCOMPARE(list->items()[0]->toInt(), int64_t(1));
    QCOMPARE(list->items()[1]->toDouble(), 2.5);
    QVERIFY(list->items()[2]->isNone());
    QVERIFY(list->items()[3]->toBool());
    QVERIFY(!list->items()[4]->toBool());

    const ValuePtr tuple = root->get(int64_t(7));
    QCOMPARE(tuple->items()[0]->toStr(), QStringLiteral("x"));
    QCOMPARE(tuple->items()[1]->toInt(), int64_t(-3));
    QCOMPARE(tuple->items()[2]->toInt(), int64_t(70000));
    QCOMPARE(tuple->items()[3]->toInt(), int64_t(1) << 40);
    QCOMPARE(tuple->items()[4]->toInt(), -(int64_t(1) << 40));
}

void TestPickle::testReadsPythonProtocol4And5()
{
    const ValuePtr four = load(hex(kProtocol4));
    QCOMPARE(four->get(QStringLiteral("a"))->items().size(), size_t(3));
    QCOMPARE(four->get(QStringLiteral("é"))->items()[0]->toStr(),
             QStringLiteral("long string long string long string "));

    const ValuePtr five = load(hex(kProtocol5));
    QCOMPARE(five->items().size(), size_t(4));
    QCOMPARE(five->items()[0]->get(QStringLiteral("k"))->items()[3]->toInt(), int64_t(4));
    QVERIFY(five->items()[2]->is(Kind::Tuple));
}

void TestPickle::testReadsOrderedDict()
{
    const ValuePtr root = load(hex(kOrderedDict));
    QVERIFY(root->isOrderedDict());
    QCOMPARE(root->entries()[0].key->toStr(), QStringLiteral("b"));
    QCOMPARE(root->entries()[1].key->toStr(), QStringLiteral("a"));
}

void TestPickle::testRoundTripKeepsEveryKind()
{
    ValuePtr attributes = Value::dict();
    attributes->set(QStringLiteral("_metadata"), Value::orderedDict());
    ValuePtr ordered = Value::orderedDict();
    ordered->set(QStringLiteral("z"), Value::real(-0.0));
    ordered->setAttributes(attributes);

    ValuePtr root = Value::dict();
    const std::vector<int64_t> integers = {
        0,         255,      256, 65535, 65536, -1, INT32_MIN, INT32_MAX, int64_t(1) << 40,
        INT64_MIN, INT64_MAX};
    ValuePtr integerList = Value::list();
    for (int64_t value : integers) {
        integerList->append(Value::integer(value));
    }
    root->set(QStringLiteral("ints"), integerList);
    root->set(QStringLiteral("floats"), py::makeFloatList({1.5, -1e-300, 3.0e38}));
    root->set(QStringLiteral("text"), Value::string(QStringLiteral("héllo ✓")));
    root->set(Value::integer(768), Value::tuple({ordered, Value::none(), Value::boolean(true)}));
    root->set(QStringLiteral("tuples"),
              Value::tuple({Value::tuple(), Value::tuple({Value::integer(1)}),
                            Value::tuple({Value::integer(1), Value::integer(2), Value::integer(3),
                                          Value::integer(4)})}));

    const py::Pickled pickled = py::pickle(root);
    QVERIFY(pickled.storages.empty());
    const ValuePtr back = load(pickled.pickle);

    const std::vector<py::ValuePtr>& ints = back->get(QStringLiteral("ints"))->items();
    for (size_t i = 0; i < integers.size(); ++i) {
        QCOMPARE(ints[i]->toInt(), integers[i]);
    }
    QCOMPARE(back->get(QStringLiteral("floats"))->items()[2]->toDouble(), 3.0e38);
    QCOMPARE(back->get(QStringLiteral("text"))->toStr(), QStringLiteral("héllo ✓"));
    const ValuePtr entry = back->get(int64_t(768));
    QVERIFY(entry->items()[0]->isOrderedDict());
    QVERIFY(entry->items()[0]->attributes()->get(QStringLiteral("_metadata"))->isOrderedDict());
    QVERIFY(std::signbit(entry->items()[0]->get(QStringLiteral("z"))->toDouble()));
    QCOMPARE(back->get(QStringLiteral("tuples"))->items()[2]->items().size(), size_t(4));
}

void TestPickle::testRoundTripOfLongContainersUsesBatches()
{
    ValuePtr list = Value::list();
    ValuePtr dict = Value::dict();
    for (int i = 0; i < 2501; ++i) {
        list->append(Value::integer(i));
        dict->set(Value::integer(i), Value::integer(-i));
    }
    const ValuePtr back = load(py::pickle(Value::tuple({list, dict})).pickle);
    QCOMPARE(back->items()[0]->items().size(), size_t(2501));
    QCOMPARE(back->items()[0]->items()[2500]->toInt(), int64_t(2500));
    QCOMPARE(back->items()[1]->get(int64_t(2500))->toInt(), int64_t(-2500));
}

void TestPickle::testForeignGlobalsAreRefused_data()
{
    QTest::addColumn<QByteArray>("pickle");
    QTest::addColumn<QString>("expected");
    QTest::addRow("os.system") << hex(kOsSystem) << "posix.system";
    QTest::addRow("os.system via stack global") << hex(kOsSystemStack) << "posix.system";
    QTest::addRow("codecs encode") << hex(kBytesProtocol2) << "_codecs.encode";
    QTest::addRow("builtins eval")
        << ops({0x80, 2}) + text("cbuiltins\neval\n.") << "builtins.eval";
}

void TestPickle::testForeignGlobalsAreRefused()
{
    QFETCH(QByteArray, pickle);
    QFETCH(QString, expected);
    STUDIO_VERIFY_ERROR(load(pickle), expected);
    STUDIO_VERIFY_ERROR(load(pickle), "refusing");
}

void TestPickle::testUnknownGlobalsBecomeInertWhenAllowed()
{
    // A checkpoint callback object: global, empty args, REDUCE, state, BUILD.
    const QByteArray pickle =
        ops({0x80, 2, '}', '(', 'X', 1, 0, 0, 0, 'c'}) +
        text("cpytorch_lightning.callbacks.model_checkpoint\nModelCheckpoint\n)R}b") +
        ops({'X', 1, 0, 0, 0, 'k', 'K', 5, 'u', '.'});
    STUDIO_VERIFY_ERROR(load(pickle),
                        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint");
    const ValuePtr root = load(pickle, /*allowUnknownGlobals=*/true);
    QVERIFY(root->get(QStringLiteral("c"))->is(Kind::Opaque));
    QCOMPARE(root->get(QStringLiteral("k"))->toInt(), int64_t(5));

    // Anything else stays refused, also in a checkpoint.
    STUDIO_VERIFY_ERROR(load(hex(kOsSystem), /*allowUnknownGlobals=*/true), "posix.system");
    STUDIO_VERIFY_ERROR(load(ops({0x80, 2}) + text("cbuiltins\neval\n."), true), "builtins.eval");
}

void TestPickle::testHostilePicklesFailCleanly_data()
{
    QTest::addColumn<QByteArray>("pickle");
    QTest::addColumn<QString>("expected");
    QTest::addRow("empty") << QByteArray() << "ends early";
    QTest::addRow("no stop") << ops({0x80, 2, 'N'}) << "ends early";
    QTest::addRow("huge string length")
        << ops({0x80, 2, 'X', 0xff, 0xff, 0xff, 0xff, 'a', '.'}) << "runs past the end";
    QTest::addRow("huge unicode8 length")
        << ops({0x80, 4, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '.'})
        << "runs past the end";
    QTest::addRow("huge long4") << ops({0x80, 2, 0x8b, 0, 0, 0, 0x80, '.'}) << "runs past the end";
    QTest::addRow("wide long1") << ops({0x80, 2, 0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, '.'})
                                << "wider than 64 bits";
    QTest::addRow("undefined memo")
        << ops({0x80, 2, 'j', 0xff, 0xff, 0xff, 0x7f, '.'}) << "used before it is defined";
    QTest::addRow("append to nothing") << ops({0x80, 2, 'a', '.'}) << "stack is empty";
    QTest::addRow("setitems without mark") << ops({0x80, 2, '}', 'u', '.'}) << "no mark";
    QTest::addRow("append to int") << ops({0x80, 2, 'K', 1, 'K', 2, 'a', '.'}) << "APPEND on a int";
    QTest::addRow("two objects") << ops({0x80, 2, 'N', 'N', '.'}) << "exactly one object";
    QTest::addRow("unknown opcode") << ops({0x80, 2, 0xfe, '.'}) << "unsupported opcode 0xfe";
    QTest::addRow("protocol 6") << ops({0x80, 6, 'N', '.'}) << "newer than 5";
    QTest::addRow("list key") << ops({0x80, 2, '}', ']', 'N', 's', '.'}) << "cannot be a dict key";
    QTest::addRow("self append") << ops({0x80, 2, ']', 'q', 0, 'h', 0, 'a', '.'})
                                 << "contains itself";
    QTest::addRow("change after use")
        << ops({0x80, 2, ']', 'q', 0, ']', 'h', 0, 'a', 'h', 0, 'N', 'a', '.'})
        << "changes a list after using it";
    QTest::addRow("persistent id without archive")
        << ops({0x80, 2, 'N', 'Q', '.'}) << "external data";
    QTest::addRow("ordered dict with arguments")
        << ops({0x80, 2}) + text("ccollections\nOrderedDict\n") + ops({'K', 1, 0x85, 'R', '.'})
        << "built with arguments";
    QTest::addRow("reduce of a string")
        << ops({0x80, 2, 'X', 1, 0, 0, 0, 'f', ')', 'R', '.'}) << "REDUCE calls a str";
    QTest::addRow("build on a list") << ops({0x80, 2, ']', '}', 'b', '.'}) << "BUILD on a list";
    QTest::addRow("unterminated global")
        << ops({0x80, 2}) + text("ccollections") << "not terminated";

    // Nesting deeper than the limit, built through the memo: [[[[...]]]] 150 levels.
    QByteArray deep = ops({0x80, 2});
    for (int i = 0; i < 150; ++i) {
        deep += ops({']'});
    }
    for (int i = 0; i < 149; ++i) {
        deep += ops({'a'});
    }
    deep += ops({'.'});
    QTest::addRow("deep nesting") << deep << "nested deeper than";
}

void TestPickle::testHostilePicklesFailCleanly()
{
    QFETCH(QByteArray, pickle);
    QFETCH(QString, expected);
    STUDIO_VERIFY_ERROR(load(pickle), expected);
}

void TestPickle::testEveryTruncationFailsCleanly()
{
    const QByteArray pickle = hex(kProtocol2);
    for (qsizetype length = 0; length < pickle.size(); ++length) {
        const QString message = test::errorMessageOf([&] { load(pickle.left(length)); });
        QVERIFY2(!message.isNull(), qPrintable(QStringLiteral("prefix %1 parsed").arg(length)));
        QVERIFY(message.contains(QStringLiteral("test.pkl")));
    }
}

void TestPickle::testRandomCorruptionNeverCrashes()
{
    // Any outcome but a crash (or a sanitizer report) is fine: parsed, or a studio::Error.
    std::mt19937 random(42);
    for (const char* source : {kProtocol2, kProtocol4, kProtocol5, kOrderedDict}) {
        const QByteArray pickle = hex(source);
        for (int trial = 0; trial < 2000; ++trial) {
            QByteArray corrupted = pickle;
            const int flips = 1 + static_cast<int>(random() % 3);
            for (int i = 0; i < flips; ++i) {
                corrupted[static_cast<qsizetype>(random() % corrupted.size())] =
                    static_cast<char>(random() & 0xff);
            }
            test::errorMessageOf([&] { load(corrupted); });
        }
    }
}

QTEST_GUILESS_MAIN(TestPickle)
#include "TestPickle.moc"
