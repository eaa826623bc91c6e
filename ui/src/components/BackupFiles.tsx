import { useEffect, useRef, useState } from 'preact/hooks';
import { api, fmtBytes } from '../api';
import {
  type Backup,
  type BackupDirectory,
  type BackupFilesystem,
  breadcrumbs,
  directoryPath,
  downloadHref,
  type FileEntry,
  filesystemLine,
  filesystemsPath,
  joinPath,
  modeString,
  NEEDS_RECOVERY,
  normalPath,
  parentPath,
  sortEntries,
} from '../backups';
import { when } from '../format';

/** What a file system's row says of it: readable, why not, or a journal not replayed. */
function FilesystemState({ fs }: { fs: BackupFilesystem }) {
  if (!fs.readable) return <span class="fs-reason">{fs.reason ?? 'cannot be browsed'}</span>;
  if (fs.needsRecovery)
    return (
      <span class="warning-text fs-recovery" title={NEEDS_RECOVERY}>
        ⚠ journal not replayed: the newest changes may be missing
      </span>
    );
  return <span class="fs-ok">readable</span>;
}

const MARKER: Record<FileEntry['type'], [string, string]> = {
  dir: ['▸', 'directory'],
  file: ['▫', 'file'],
  symlink: ['↪', 'symbolic link'],
  other: ['◇', 'special file (device, FIFO, socket)'],
};

/**
 * File restore: a backup's file systems (each disk's partitions); a readable one (ext2/3/4) is browsed
 * straight from the repository, directory by directory: a breadcrumb, "..", directories to enter,
 * symbolic links shown with their target (not followed), files with a Download link. Nothing is
 * restored to a volume.
 */
export function BackupFilesDialog({ backup, onClose }: { backup: Backup; onClose: () => void }) {
  const [filesystems, setFilesystems] = useState<BackupFilesystem[] | undefined>();
  const [fsError, setFsError] = useState('');
  const [fs, setFs] = useState<BackupFilesystem | undefined>();
  const [path, setPath] = useState('/');
  const [dir, setDir] = useState<BackupDirectory | undefined>();
  const [dirError, setDirError] = useState('');
  const [loading, setLoading] = useState(false);
  // the answer to the newest request only (a slow one for a directory left since is dropped)
  const asked = useRef(0);

  useEffect(() => {
    api<BackupFilesystem[]>('GET', filesystemsPath(backup))
      .then(setFilesystems)
      .catch((e) => setFsError((e as Error).message));
  }, [backup.id, backup.repository]);

  useEffect(() => {
    if (!fs) return;
    const n = ++asked.current;
    setLoading(true);
    setDirError('');
    api<BackupDirectory>('GET', directoryPath(backup, fs.id, path))
      .then((d) => {
        if (n !== asked.current) return;
        setDir(d);
      })
      .catch((e) => {
        if (n !== asked.current) return;
        setDir(undefined);
        setDirError((e as Error).message);
      })
      .finally(() => n === asked.current && setLoading(false));
  }, [fs?.id, path]);

  const open = (f: BackupFilesystem) => {
    setDir(undefined);
    setPath('/');
    setFs(f);
  };
  const back = () => {
    asked.current++;
    setFs(undefined);
    setDir(undefined);
    setDirError('');
    setLoading(false);
  };
  const cd = (p: string) => setPath(normalPath(p));

  const title = `Files of the backup of ${backup.vm.name} from ${when(backup.pointInTime)}`;
  // the listing shown is that of the path asked (an older one stays greyed while the next loads)
  const shown = dir && normalPath(dir.path) === path ? dir : undefined;
  return (
    <div class="modal-backdrop">
      <div
        class="modal backup-files"
        role="dialog"
        aria-label={title}
        data-backup={backup.id}
        data-fs={fs?.id}
        data-path={fs ? path : undefined}
      >
        <h3>{title}</h3>
        <div class="modal-body">
          {!fs ? (
            <>
              <p class="hint">
                Read straight from repository {backup.repository}: nothing is restored. ext2, ext3 and ext4
                can be browsed and their files downloaded.
              </p>
              {fsError && (
                <div class="form-error" role="alert">
                  {fsError}
                </div>
              )}
              {!filesystems && !fsError && <div class="muted">Reading the disks…</div>}
              {filesystems && (
                <table class="grid filesystems">
                  <thead>
                    <tr>
                      <th>File system</th>
                      <th>Type</th>
                      <th>Size</th>
                      <th>Label</th>
                      <th />
                    </tr>
                  </thead>
                  <tbody>
                    {filesystems.map((f) => (
                      <tr
                        key={f.id}
                        data-fs={f.id}
                        data-readable={String(f.readable)}
                        class={f.readable ? 'clickable' : 'fs-unreadable'}
                        title={f.uuid ? `UUID ${f.uuid}` : undefined}
                        onClick={f.readable ? () => open(f) : undefined}
                      >
                        <td class="nowrap">
                          {f.readable ? (
                            <button type="button" class="link fs-open" data-action="open-fs">
                              {f.id}
                            </button>
                          ) : (
                            f.id
                          )}
                          {f.partition !== undefined && (
                            <div class="hint">
                              partition {f.partition} of {f.disk}
                            </div>
                          )}
                        </td>
                        <td class="fs-type">{f.type}</td>
                        <td class="nowrap">{fmtBytes(f.sizeBytes)}</td>
                        <td class="fs-label">{f.label ?? ''}</td>
                        <td class="fs-state">
                          <FilesystemState fs={f} />
                        </td>
                      </tr>
                    ))}
                    {filesystems.length === 0 && (
                      <tr>
                        <td colSpan={5} class="muted">
                          No file systems on the backup's disks (blank disks, or no partition table known).
                        </td>
                      </tr>
                    )}
                  </tbody>
                </table>
              )}
            </>
          ) : (
            <>
              <div class="toolbar files-head">
                <button type="button" data-action="files-back" onClick={back}>
                  ← File systems
                </button>
                <span>
                  <b>{fs.id}</b> <span class="muted">{filesystemLine(fs)}</span>
                </span>
              </div>
              {fs.needsRecovery && (
                <div class="files-warning" role="alert" data-testid="needs-recovery">
                  ⚠ {NEEDS_RECOVERY}
                </div>
              )}
              <nav class="breadcrumb mono" aria-label="Path" data-testid="breadcrumb">
                {breadcrumbs(path).map((c, i, all) => (
                  <span key={c.path}>
                    {i > 1 && <span class="crumb-sep">/</span>}
                    {i === all.length - 1 ? (
                      <span class="crumb crumb-here" data-path={c.path} aria-current="location">
                        {c.name}
                      </span>
                    ) : (
                      <button type="button" class="link crumb" data-path={c.path} onClick={() => cd(c.path)}>
                        {c.name}
                      </button>
                    )}
                  </span>
                ))}
                {loading && <span class="muted files-loading"> loading…</span>}
              </nav>
              {dirError && (
                <div class="form-error" role="alert" data-testid="files-error">
                  {dirError}
                </div>
              )}
              {shown?.truncated && (
                <div class="files-warning" data-testid="files-truncated">
                  Truncated: the directory has more entries than the {shown.entries.length} listed.
                </div>
              )}
              {(shown || (!dirError && dir)) && (
                <DirectoryTable
                  dir={(shown ?? dir)!}
                  stale={!shown}
                  href={(name) => downloadHref(backup, fs.id, joinPath(path, name))}
                  onEnter={(name) => cd(joinPath(path, name))}
                  onUp={path === '/' ? undefined : () => cd(parentPath(path))}
                />
              )}
            </>
          )}
        </div>
        <div class="modal-actions">
          <button type="button" data-action="close-files" onClick={onClose}>
            Close
          </button>
        </div>
      </div>
    </div>
  );
}

/** A directory's entries: directories first, each with its marker, size, modification time, mode and owner. */
function DirectoryTable({
  dir,
  stale,
  href,
  onEnter,
  onUp,
}: {
  dir: BackupDirectory;
  stale: boolean;
  href: (name: string) => string;
  onEnter: (name: string) => void;
  onUp?: () => void;
}) {
  return (
    <div class="table-scroll files-scroll">
      <table class={`grid files${stale ? ' stale' : ''}`}>
        <thead>
          <tr>
            <th>Name</th>
            <th class="num">Size</th>
            <th>Modified</th>
            <th>Mode</th>
            <th title="uid:gid">Owner</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {onUp && (
            <tr class="clickable" data-entry=".." data-type="dir" onClick={onUp}>
              <td colSpan={6}>
                <span class="file-marker" aria-hidden="true">
                  ▴
                </span>
                <button type="button" class="link entry-name" title="The directory above">
                  ..
                </button>
              </td>
            </tr>
          )}
          {sortEntries(dir.entries).map((e) => {
            const [marker, what] = MARKER[e.type];
            return (
              <tr
                key={e.name}
                data-entry={e.name}
                data-type={e.type}
                class={e.type === 'dir' ? 'clickable' : undefined}
                onClick={e.type === 'dir' ? () => onEnter(e.name) : undefined}
              >
                <td class={`file-name file-${e.type}`}>
                  <span class="file-marker" title={what}>
                    {marker}
                  </span>
                  {e.type === 'dir' ? (
                    <button type="button" class="link entry-name">
                      {e.name}/
                    </button>
                  ) : e.type === 'symlink' ? (
                    <span class="entry-name" title="A symbolic link: its target is not followed">
                      {e.name} <span class="muted link-target">→ {e.target ?? '?'}</span>
                    </span>
                  ) : (
                    <span class="entry-name">{e.name}</span>
                  )}
                </td>
                <td class="num nowrap">{e.type === 'dir' ? '' : fmtBytes(e.size)}</td>
                <td class="nowrap">{when(e.mtime)}</td>
                <td class="mono nowrap file-mode">{modeString(e.mode, e.type)}</td>
                <td class="mono nowrap">
                  {e.uid}:{e.gid}
                </td>
                <td class="nowrap">
                  {e.type === 'file' && (
                    <a
                      href={href(e.name)}
                      download={e.name}
                      data-action="download-file"
                      onClick={(ev) => ev.stopPropagation()}
                    >
                      Download
                    </a>
                  )}
                </td>
              </tr>
            );
          })}
          {dir.entries.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                Empty directory.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}
