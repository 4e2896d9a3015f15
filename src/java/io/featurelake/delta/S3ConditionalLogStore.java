package io.featurelake.delta;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.util.Iterator;

import io.delta.storage.S3SingleDriverLogStore;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FSDataOutputStreamBuilder;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.s3a.RemoteFileChangedException;

/**
 * Delta's log store for S3 when several drivers (clusters, processes) commit to one table: a commit file is
 * created with an S3 conditional write (PUT If-None-Match: *, S3A's conditional create), so only one writer of
 * version N succeeds and the others get the FileAlreadyExistsException on which Delta checks for conflicts and
 * retries at N+1. Delta 4.4 ships no such log store (its S3 one locks within one JVM; the multi-cluster one needs
 * DynamoDB); everything but the commit write (listing, reads, overwrites of _last_checkpoint) is
 * S3SingleDriverLogStore's.
 */
public class S3ConditionalLogStore extends S3SingleDriverLogStore {
    /** S3A's builder option asking for a create that fails when the object exists (Hadoop 3.5). */
    static final String CONDITIONAL_CREATE = "fs.option.create.conditional.overwrite";

    public S3ConditionalLogStore(Configuration hadoopConf) {
        super(hadoopConf);
    }

    @Override
    public void write(Path path, Iterator<String> actions, Boolean overwrite, Configuration hadoopConf)
            throws IOException {
        if (overwrite) {
            super.write(path, actions, true, hadoopConf);
            return;
        }
        FileSystem fs = path.getFileSystem(hadoopConf);
        // The PUT happens when the stream closes: a lost race surfaces there, as S3's 412 Precondition Failed.
        FSDataOutputStreamBuilder<?, ?> create = fs.createFile(path).overwrite(false);
        create.must(CONDITIONAL_CREATE, true);
        try (FSDataOutputStream out = create.build()) {
            while (actions.hasNext()) {
                out.write((actions.next() + "\n").getBytes(StandardCharsets.UTF_8));
            }
        } catch (RemoteFileChangedException | org.apache.hadoop.fs.FileAlreadyExistsException e) {
            FileAlreadyExistsException exists = new FileAlreadyExistsException(path.toString());
            exists.initCause(e);
            throw exists;
        }
    }

    @Override
    public Boolean isPartialWriteVisible(Path path, Configuration hadoopConf) {
        return false;
    }
}
