/*
 * NodeOS's DSDT, linked into the kernel in place of the one QEMU builds
 * (CONFIG_ACPI_CUSTOM_DSDT_FILE; images/kernel/build.sh compiles it with iasl).
 *
 * Why: QEMU's pc DSDT describes 32 hot-plug slots, the CPUs, the ISA devices,
 * link devices and GPE handlers. Loading it, running its _INI/_STA methods and
 * enumerating its devices was acpi_init's ~170-260 ms under TCG, the largest
 * single kernel cost, and NodeOS uses none of it: the kernel runs with
 * acpi=noirq, finds PCI by probing bus 0, the serial port and the RTC at
 * their legacy addresses, and the CPUs from the MADT. The other tables (FADT,
 * MADT, HPET) still come from QEMU, so the HPET stays the reference that
 * calibrates the TSC under TCG and the FADT's reset register still reboots.
 *
 * What is left is the one object ACPI poweroff reads from the namespace: the
 * S5 sleep type. SLP_TYP 0 written to PM1a_CNT with SLP_EN is "soft power
 * off" on QEMU's PIIX4 (pc) and ICH9 (q35) alike, as in QEMU's own DSDT.
 */
DefinitionBlock ("", "DSDT", 1, "NODEOS", "NODEOS  ", 1)
{
    Name (_S5, Package (4) { Zero, Zero, Zero, Zero })
}
