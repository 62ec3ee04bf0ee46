package dataplane

import (
	"encoding/binary"
	"fmt"
	"strings"

	mnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Reading verdict maps back. google/nftables v0.3.0 does not decode a map
// element's verdict (it keeps only NFTA_DATA_VALUE), so the read-back of
// an interface → chain map asks the kernel itself: one NFT_MSG_GETSETELEM
// dump, decoded here down to each element's verdict and chain. The element
// comments Serval writes are for readers of `nft list` only; a map element
// whose jump was changed and its comment kept is seen as changed.

// InNetNS makes the kernel backend's own netlink requests (verdict map
// read-back) in the network namespace fd; newConn must open its nftables
// connections there too. Zero is the caller's namespace.
func (k *KernelNFT) InNetNS(fd int) *KernelNFT {
	k.netns = fd
	return k
}

// readVmap returns the elements of the interface verdict map name.
func (k *KernelNFT) readVmap(name string) ([]elem, error) {
	c, err := mnetlink.Dial(unix.NETLINK_NETFILTER, &mnetlink.Config{NetNS: k.netns})
	if err != nil {
		return nil, fmt.Errorf("opening netfilter netlink: %w", err)
	}
	defer c.Close()
	ae := mnetlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, name)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	// nfgenmsg: family inet, version 0, resource id 0.
	data := append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...)
	msgs, err := c.Execute(mnetlink.Message{
		Header: mnetlink.Header{
			Type:  mnetlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: mnetlink.Request | mnetlink.Dump,
		},
		Data: data,
	})
	if err != nil {
		return nil, fmt.Errorf("dumping elements of map %s: %w", name, err)
	}
	var out []elem
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		es, err := decodeVmapElems(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("decoding elements of map %s: %w", name, err)
		}
		out = append(out, es...)
	}
	return out, nil
}

// decodeVmapElems decodes the attributes of one GETSETELEM answer.
func decodeVmapElems(b []byte) ([]elem, error) {
	ad, err := mnetlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	var out []elem
	for ad.Next() {
		if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad.Nested(func(list *mnetlink.AttributeDecoder) error {
			for list.Next() {
				if list.Type() != unix.NFTA_LIST_ELEM {
					continue
				}
				var key, chain string
				var code uint32
				list.Nested(func(el *mnetlink.AttributeDecoder) error {
					for el.Next() {
						switch el.Type() {
						case unix.NFTA_SET_ELEM_KEY:
							el.Nested(func(k *mnetlink.AttributeDecoder) error {
								for k.Next() {
									if k.Type() == unix.NFTA_DATA_VALUE {
										key = strings.TrimRight(string(k.Bytes()), "\x00")
									}
								}
								return nil
							})
						case unix.NFTA_SET_ELEM_DATA:
							el.Nested(func(d *mnetlink.AttributeDecoder) error {
								for d.Next() {
									if d.Type() != unix.NFTA_DATA_VERDICT {
										continue
									}
									d.Nested(func(v *mnetlink.AttributeDecoder) error {
										v.ByteOrder = binary.BigEndian
										for v.Next() {
											switch v.Type() {
											case unix.NFTA_VERDICT_CODE:
												code = v.Uint32()
											case unix.NFTA_VERDICT_CHAIN:
												chain = v.String()
											}
										}
										return nil
									})
								}
								return nil
							})
						}
					}
					return nil
				})
				// Only "jump chain" is Serval's; anything else shows as an
				// element with no chain, which differs from every wanted one.
				if int32(code) != unix.NFT_JUMP {
					chain = ""
				}
				out = append(out, vmapElem(key, chain))
			}
			return nil
		})
	}
	return out, ad.Err()
}
