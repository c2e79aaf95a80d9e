import type { FC } from 'hono/jsx';
import type { Hardware } from '../../core/types.ts';
import { Fact } from '../components.tsx';
import { formatBinaryBytes, formatDecimalBytes, formatLinkSpeed } from '../format.ts';
import { MAX_HARDWARE_ROWS, boundedJson, clip, cpuSummary, diskKindText, switchPortText, totalDiskBytes, viewHardware } from '../hardware-view.ts';

const dash = (v: string | number | null | undefined) => (v === null || v === undefined || v === '' ? '—' : clip(String(v)));

/**
 * A machine's hardware in human units: summary, then CPUs, DIMMs, disks, NICs and GPUs. Bounded
 * whatever was reported: at most MAX_HARDWARE_ROWS rows a table, cells cut at MAX_CELL_CHARS, the raw
 * extra fields cut at MAX_RAW_CHARS.
 */
export const HardwareSection: FC<{ hardware: Hardware }> = ({ hardware }) => {
  const hw = viewHardware(hardware);
  const extraKeys = Object.keys(hw.extra);
  return (
    <section class="card" aria-labelledby="hardware">
      <h2 id="hardware">Hardware</h2>
      <dl class="facts">
        <Fact label="Vendor">{dash(hw.manufacturer)}</Fact>
        <Fact label="Model">{dash(hw.model)}</Fact>
        <Fact label="Serial">{dash(hw.serial)}</Fact>
        <Fact label="SMBIOS UUID">
          <span class="mono">{dash(hw.uuid)}</span>
        </Fact>
        <Fact label="CPU">{clip(cpuSummary(hw))}</Fact>
        <Fact label="Memory">{formatBinaryBytes(hw.memoryBytes)}</Fact>
        <Fact label="Disks">
          {hw.disks.length} · {formatDecimalBytes(totalDiskBytes(hw))}
        </Fact>
        <Fact label="BIOS">{hw.bios ? clip([hw.bios.vendor, hw.bios.version, hw.bios.date].filter(Boolean).join(' · ')) || '—' : '—'}</Fact>
      </dl>
      {hw.cpu && (
        <HwTable caption="CPU" head={['Model', 'Architecture', 'Sockets', 'Cores', 'Threads']} rows={[[hw.cpu.model, hw.cpu.architecture, hw.cpu.sockets, hw.cpu.cores, hw.cpu.threads].map(dash)]} />
      )}
      {hw.dimms.length > 0 && (
        <HwTable
          caption="Memory modules"
          head={['Slot', 'Size', 'Type', 'Speed']}
          rows={hw.dimms.map((d) => [dash(d.locator), d.sizeBytes ? formatBinaryBytes(d.sizeBytes) : 'empty', dash(d.type), d.speedMts ? `${d.speedMts} MT/s` : '—'])}
        />
      )}
      {hw.disks.length > 0 && (
        <HwTable
          caption="Disks"
          head={['Name', 'Size', 'Kind', 'Model', 'Serial']}
          rows={hw.disks.map((d) => [dash(d.name), formatDecimalBytes(d.sizeBytes), clip(diskKindText(d)), dash(d.model), dash(d.serial)])}
        />
      )}
      {hw.nics.length > 0 && (
        <HwTable
          caption="Network interfaces"
          head={['Name', 'MAC', 'Driver', 'Speed', 'Link', 'Switch port (LLDP)']}
          rows={hw.nics.map((n) => [dash(n.name), dash(n.mac), dash(n.driver), formatLinkSpeed(n.speedMbps), n.link === null ? '—' : n.link ? 'up' : 'down', clip(switchPortText(n.lldp))])}
        />
      )}
      {hw.gpus.length > 0 && <HwTable caption="GPUs" head={['Vendor', 'Model', 'PCI address']} rows={hw.gpus.map((g) => [dash(g.vendor), dash(g.model), dash(g.pciAddress)])} />}
      {extraKeys.length > 0 && (
        <details>
          <summary>Other reported fields ({extraKeys.length})</summary>
          <pre class="raw">{boundedJson(hw.extra)}</pre>
        </details>
      )}
    </section>
  );
};

const HwTable: FC<{ caption: string; head: string[]; rows: string[][] }> = ({ caption, head, rows }) => (
  <div class="table-scroll">
    <HwRows caption={caption} head={head} rows={rows.slice(0, MAX_HARDWARE_ROWS)} />
    {rows.length > MAX_HARDWARE_ROWS && (
      <p class="muted">
        {rows.length - MAX_HARDWARE_ROWS} more not shown (the API has them all).
      </p>
    )}
  </div>
);

const HwRows: FC<{ caption: string; head: string[]; rows: string[][] }> = ({ caption, head, rows }) => (
  <table class="compact hw">
    <caption>{caption}</caption>
    <thead>
      <tr>
        {head.map((h) => (
          <th scope="col">{h}</th>
        ))}
      </tr>
    </thead>
    <tbody>
      {rows.map((r) => (
        <tr>
          {r.map((c) => (
            <td>{c}</td>
          ))}
        </tr>
      ))}
    </tbody>
  </table>
);
