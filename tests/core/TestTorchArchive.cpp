// torch.save archives: reading the webui's files, writing what torch.load reads, and damaged or
// hostile archives that must end in a clear error (this suite also runs under AddressSanitizer).

#include "support/TestSupport.h"

#include "core/io/AtomicFile.h"
#include "core/io/TorchArchive.h"
#include "core/io/ZipArchive.h"

#include <QBuffer>
#include <QFile>
#include <QObject>
#include <QTemporaryDir>

#include <random>

using namespace studio;
using py::Kind;
using py::Value;
using py::ValuePtr;

namespace {

QByteArray readAll(const QString& path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

ValuePtr sampleTree()
{
    ValuePtr root = Value::dict();
    root->set(QStringLiteral("float"), Value::tensor(at::arange(12, at::kFloat).reshape({3, 4})));
    root->set(QStringLiteral("half"), Value::tensor(at::ones({5}, at::kHalf)));
    root->set(QStringLiteral("long"), Value::tensor(at::arange(3, at::kLong)));
    root->set(QStringLiteral("scalar"), Value::tensor(at::scalar_tensor(2.5)));
    root->set(QStringLiteral("empty"), Value::tensor(at::empty({0, 4})));
    root->set(QStringLiteral("transposed"),
              Value::tensor(at::arange(6, at::kFloat).reshape({2, 3}).t()));
    return root;
}

ValuePtr readBytes(const QByteArray& bytes)
{
    return io::readTorchBytes(bytes, QStringLiteral("'test.pt'"));
}

// A valid archive whose pickle is replaced by `pickle`.
QByteArray archiveWithPickle(const QByteArray& pickle, const QByteArray& storage = {})
{
    QByteArray bytes;
    QBuffer buffer(&bytes);
    buffer.open(QIODevice::WriteOnly);
    io::ZipWriter zip(buffer, QStringLiteral("archive"));
    zip.addRecord(QStringLiteral("data.pkl"), pickle);
    if (!storage.isEmpty()) {
        zip.addRecord(QStringLiteral("data/0"), storage);
    }
    zip.addRecord(QStringLiteral("version"), QByteArrayLiteral("3\n"));
    zip.finish();
    return bytes;
}

QByteArray littleEndian32(uint32_t value)
{
    QByteArray bytes;
    for (int i = 0; i < 4; ++i) {
        bytes.append(static_cast<char>((value >> (8 * i)) & 0xff));
    }
    return bytes;
}

// A pickle of one tensor: _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', numel), 0,
// (size,), (1,), False, OrderedDict()). `numel` and `size` are what a hostile file may lie about.
QByteArray tensorPickle(uint32_t numel, uint32_t size)
{
    QByteArray pickle = QByteArray::fromHex("8002");
    pickle += "ctorch._utils\n_rebuild_tensor_v2\n((";
    pickle += QByteArray::fromHex("5807000000") + "storage";
    pickle += "ctorch\nFloatStorage\n";
    pickle += QByteArray::fromHex("5801000000") + "0";
    pickle += QByteArray::fromHex("5803000000") + "cpu";
    pickle += "J" + littleEndian32(numel) + "tQ";  // the id tuple, persistent load
    pickle += QByteArray::fromHex("4b00");         // storage offset 0
    pickle += "J" + littleEndian32(size) + "\x85"; // (size,)
    pickle += QByteArray::fromHex("4b018589");     // (1,), requires_grad False
    pickle += "ccollections\nOrderedDict\n)RtR.";  // hooks, then the call
    return pickle;
}

} // namespace

class TestTorchArchive : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void testReadsWebuiFile();
    void testRoundTripKeepsTensors();
    void testWrittenArchiveLooksLikeTorchSave();
    void testDamagedArchivesFailCleanly_data();
    void testDamagedArchivesFailCleanly();
    void testEveryTruncationFailsCleanly();
    void testRandomCorruptionNeverCrashes();
    void testHostileTensorDescriptions_data();
    void testHostileTensorDescriptions();
    void testFailedWriteKeepsTheOldFile();
    void testWriteIntoMissingFolderNamesThePath();
};

void TestTorchArchive::testReadsWebuiFile()
{
    const ValuePtr root =
        io::readTorchFile(test::referencePath(QStringLiteral("hypernetworks/a_linear_121.pt")));
    QCOMPARE(root->get(QStringLiteral("name"))->toStr(), QStringLiteral("a_linear_121"));
    const ValuePtr pair = root->get(int64_t(12));
    QVERIFY(pair->is(Kind::Tuple));
    const ValuePtr state = pair->items()[0];
    QVERIFY(state->isOrderedDict());
    const at::Tensor weight = state->get(QStringLiteral("linear.0.weight"))->toTensor();
    QCOMPARE(test::shapeOf(weight), QStringLiteral("[24, 12]"));
    QCOMPARE(weight.scalar_type(), at::kFloat);
}

void TestTorchArchive::testRoundTripKeepsTensors()
{
    const ValuePtr tree = sampleTree();
    const ValuePtr back = readBytes(io::serializeTorch(tree, QStringLiteral("sample")));
    for (const py::DictEntry& entry : tree->entries()) {
        const at::Tensor& expected = entry.value->toTensor();
        const at::Tensor actual = back->get(entry.key->toStr())->toTensor();
        QCOMPARE(test::shapeOf(actual), test::shapeOf(expected));
        QCOMPARE(actual.scalar_type(), expected.scalar_type());
        QVERIFY(at::equal(actual, expected));
    }
}

void TestTorchArchive::testWrittenArchiveLooksLikeTorchSave()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("model.pt"));
    io::writeTorchFile(path, sampleTree());
    const QByteArray bytes = readAll(path);

    const io::ZipReader zip(bytes.constData(), static_cast<size_t>(bytes.size()),
                            QStringLiteral("model.pt"));
    QCOMPARE(zip.archiveName(), QStringLiteral("model"));
    QVERIFY(zip.find(QStringLiteral("data.pkl")));
    QCOMPARE(QByteArray(zip.recordData(*zip.find(QStringLiteral("version")), true), 2),
             QByteArrayLiteral("3\n"));
    for (const QString& name : zip.recordNames()) {
        const io::ZipReader::Record* record = zip.find(name);
        if (name.startsWith(QStringLiteral("data/"))) {
            // Aligned like torch.save's records, so they can be mapped in place.
            QCOMPARE(record->dataOffset % 64, uint64_t(0));
        }
        zip.recordData(*record, /*verifyChecksum=*/true);
    }
}

void TestTorchArchive::testDamagedArchivesFailCleanly_data()
{
    const QByteArray valid = io::serializeTorch(sampleTree(), QStringLiteral("x"));
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<QString>("expected");

    QTest::addRow("empty") << QByteArray() << "too short";
    QTest::addRow("not a zip") << QByteArray(4096, 'x') << "not a torch zip archive";
    // Pre-1.6 torch files are a bare pickle starting with a magic number.
    QTest::addRow("legacy torch file")
        << QByteArray::fromHex("80028a0a6cfc9c46f9206aa85019") + QByteArray(64, 'N') << "legacy";

    QByteArray noPickle;
    {
        QBuffer buffer(&noPickle);
        buffer.open(QIODevice::WriteOnly);
        io::ZipWriter zip(buffer, QStringLiteral("archive"));
        zip.addRecord(QStringLiteral("version"), QByteArrayLiteral("3\n"));
        zip.finish();
    }
    QTest::addRow("no data.pkl") << noPickle << "no data.pkl";

    // The end record's directory offset pointed past the end of the file.
    QByteArray badOffset = valid;
    const qsizetype end = badOffset.lastIndexOf(QByteArray("PK\x05\x06", 4));
    badOffset[end + 16] = '\xff';
    badOffset[end + 19] = '\x7f';
    QTest::addRow("directory outside the file") << badOffset << "outside the file";

    // A record marked as deflate-compressed (method 8) in the central directory.
    QByteArray compressed = valid;
    const qsizetype entry = compressed.indexOf(QByteArray("PK\x01\x02", 4));
    compressed[entry + 10] = 8;
    QTest::addRow("compressed record") << compressed << "compressed";

    // A flipped byte inside the pickle record: the checksum catches it.
    QByteArray flipped = valid;
    const io::ZipReader zip(valid.constData(), static_cast<size_t>(valid.size()),
                            QStringLiteral("x"));
    const auto pickleAt = static_cast<qsizetype>(zip.find(QStringLiteral("data.pkl"))->dataOffset);
    flipped[pickleAt + 3] = static_cast<char>(flipped[pickleAt + 3] ^ 0x20);
    QTest::addRow("flipped pickle byte") << flipped << "checksum";

    QTest::addRow("foreign global")
        << archiveWithPickle(QByteArray::fromHex("8002") + "cos\nsystem\n.") << "refusing";
}

void TestTorchArchive::testDamagedArchivesFailCleanly()
{
    QFETCH(QByteArray, bytes);
    QFETCH(QString, expected);
    STUDIO_VERIFY_ERROR(readBytes(bytes), expected);
    STUDIO_VERIFY_ERROR(readBytes(bytes), "test.pt");
}

void TestTorchArchive::testEveryTruncationFailsCleanly()
{
    const QByteArray valid = io::serializeTorch(sampleTree(), QStringLiteral("x"));
    for (qsizetype length = 0; length < valid.size(); length += 7) {
        const QString message = test::errorMessageOf([&] { readBytes(valid.left(length)); });
        QVERIFY2(!message.isNull(), qPrintable(QStringLiteral("prefix %1 was read").arg(length)));
    }
}

void TestTorchArchive::testRandomCorruptionNeverCrashes()
{
    const QByteArray valid = io::serializeTorch(sampleTree(), QStringLiteral("x"));
    std::mt19937 random(7);
    for (int trial = 0; trial < 1500; ++trial) {
        QByteArray corrupted = valid;
        for (int i = 0; i < 4; ++i) {
            corrupted[static_cast<qsizetype>(random() % corrupted.size())] =
                static_cast<char>(random() & 0xff);
        }
        io::TorchReadOptions options;
        options.verifyChecksums = trial % 2 == 0; // also reach the parsers behind the CRC
        test::errorMessageOf(
            [&] { io::readTorchBytes(corrupted, QStringLiteral("'c.pt'"), options); });
    }
}

void TestTorchArchive::testHostileTensorDescriptions_data()
{
    const QByteArray fourFloats(16, '\0');
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<QString>("expected");
    QTest::addRow("valid") << archiveWithPickle(tensorPickle(4, 4), fourFloats) << QString();
    QTest::addRow("storage larger than its record")
        << archiveWithPickle(tensorPickle(0x7fffffff, 4), fourFloats) << "claims 2147483647";
    QTest::addRow("tensor larger than its storage")
        << archiveWithPickle(tensorPickle(4, 0x7fffffff), fourFloats) << "past the end";
    QTest::addRow("missing storage record")
        << archiveWithPickle(tensorPickle(4, 4)) << "storage '0' is missing";
}

void TestTorchArchive::testHostileTensorDescriptions()
{
    QFETCH(QByteArray, bytes);
    QFETCH(QString, expected);
    if (expected.isEmpty()) {
        const ValuePtr tensor = readBytes(bytes);
        QCOMPARE(tensor->toTensor().numel(), int64_t(4));
        return;
    }
    STUDIO_VERIFY_ERROR(readBytes(bytes), expected);
}

void TestTorchArchive::testFailedWriteKeepsTheOldFile()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("keep.pt"));
    io::writeFileAtomically(path, QByteArrayLiteral("old content"));

    const QString message = test::errorMessageOf([&] {
        io::writeFileAtomically(path, [](QIODevice& device) {
            device.write("partial new cont");
            throw Error(QStringLiteral("simulated failure while writing"));
        });
    });
    QVERIFY(message.contains(QStringLiteral("simulated failure")));
    QCOMPARE(readAll(path), QByteArrayLiteral("old content"));
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList{QStringLiteral("keep.pt")});
}

void TestTorchArchive::testWriteIntoMissingFolderNamesThePath()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("missing/folder/x.pt"));
    STUDIO_VERIFY_ERROR(io::writeTorchFile(path, sampleTree()), "missing/folder/x.pt");
}

QTEST_GUILESS_MAIN(TestTorchArchive)
#include "TestTorchArchive.moc"
